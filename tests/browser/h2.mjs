// Loads a page over HTTPS in headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core and prints one JSON line: the protocol of the page and of every resource
// (`performance.getEntries()`'s nextHopProtocol), how many of the page's scripts ran, and
// every console error, uncaught exception or failed request. The test's certificate is
// self-signed, so certificate errors are ignored. Every wait is bounded; a failure exits
// non-zero with the reason on stderr.
//
//   node h2.mjs https://localhost:PORT/page.html
import { chromium } from "playwright-core";

const [url] = process.argv.slice(2);
const WAIT_MS = 30000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const errors = [];
  page.on("console", (msg) => { if (msg.type() === "error") errors.push("console: " + msg.text()); });
  page.on("pageerror", (err) => errors.push("exception: " + err.message));
  page.on("requestfailed", (req) => errors.push("failed: " + req.url()));
  const response = await page.goto(url, { waitUntil: "load" });
  if (!response || response.status() !== 200) throw new Error("status " + (response && response.status()));
  const seen = await page.evaluate(() => ({
    entries: performance.getEntries()
      .filter((e) => e.entryType === "navigation" || e.entryType === "resource")
      .map((e) => ({ name: new URL(e.name).pathname, type: e.entryType, protocol: e.nextHopProtocol })),
    scriptsRun: window.scriptsRun || 0,
    imagesLoaded: [...document.images].filter((i) => i.complete && i.naturalWidth > 0).length,
  }));
  console.log(JSON.stringify({ ...seen, errors }));
} catch (e) {
  console.error("h2 page check failed: " + e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
