//! The `Range` header (`http::range::parse`) for any value and file length.
//!
//! Properties, beyond "never panics": a partial answer lies inside the file and is not
//! empty; an empty file never gets a partial answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use occwserv::http::range::{parse, RangeAnswer};

fuzz_target!(|input: &[u8]| {
    if input.len() < 8 {
        return;
    }
    let (len_bytes, value) = input.split_at(8);
    let mut raw = [0u8; 8];
    raw.copy_from_slice(len_bytes);
    // Mostly small lengths, sometimes huge ones.
    let len = u64::from_le_bytes(raw);
    let len = if len & 1 == 0 { len % 4096 } else { len };
    let Ok(value) = std::str::from_utf8(value) else {
        return;
    };
    if let RangeAnswer::Partial { start, end } = parse(value, len) {
        assert!(start <= end, "{value:?} {len}: {start}..={end}");
        assert!(end < len, "{value:?} {len}: {start}..={end}");
    }
});
