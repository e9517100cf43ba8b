// Opens an HTTPS page in headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core, trusting only what the NSS database under $HOME/.pki/nssdb trusts (the
// test puts its CA there with certutil; no certificate errors are ignored), and prints one
// JSON line: the status, the connection's security details (protocol, issuer, subject), the
// page title, the text of the element `#tls` if there is one, how often the status page's
// script refreshed, and every console error or uncaught exception. With `--stats` it waits
// until /stats.html has refreshed itself from /stats.json twice; with `--fetched`, until the
// page's own script has set its title to end in ", fetched". Every wait is bounded; a
// failure exits non-zero with the reason on stderr.
//
//   HOME=DIR node https.mjs https://localhost:PORT/stats.html --stats
import { chromium } from "playwright-core";

const [url, mode] = process.argv.slice(2);
const WAIT_MS = 30000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(WAIT_MS);
  const errors = [];
  page.on("console", (msg) => { if (msg.type() === "error") errors.push("console: " + msg.text()); });
  page.on("pageerror", (err) => errors.push("exception: " + err.message));
  const response = await page.goto(url, { waitUntil: "load" });
  if (!response) throw new Error("no response");
  const security = await response.securityDetails();
  if (mode === "--stats") {
    await page.waitForFunction(() => Number(document.documentElement.getAttribute("data-updates") || 0) >= 2);
  } else if (mode === "--fetched") {
    await page.waitForFunction(() => document.title.endsWith(", fetched"));
  }
  const seen = await page.evaluate(() => ({
    title: document.title,
    tls: document.getElementById("tls") ? document.getElementById("tls").innerText : null,
    updates: Number(document.documentElement.getAttribute("data-updates") || 0),
  }));
  console.log(JSON.stringify({
    status: response.status(),
    protocol: security && security.protocol,
    issuer: security && security.issuer,
    subject: security && security.subjectName,
    ...seen,
    errors,
  }));
} catch (e) {
  console.error("https page check failed: " + e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
