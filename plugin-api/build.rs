//! Records the compiler's version, so a plug-in's declaration and the server's check carry the
//! same string when both were built by the same rustc.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "rustc unknown".to_string());
    println!("cargo:rustc-env=OCCWSERV_PLUGIN_API_RUSTC={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
