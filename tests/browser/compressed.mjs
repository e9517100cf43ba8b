// Loads a page in headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core
// and prints one JSON line: the Content-Encoding of every response by path, what the page's
// script and style sheet did (`window.appResult`, the body's computed background colour),
// and every console error or uncaught exception. Every wait is bounded; a failure exits
// non-zero with the reason on stderr.
//
//   node compressed.mjs http://127.0.0.1:PORT/page.html
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
  const page = await browser.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const errors = [];
  const encodings = {};
  page.on("console", (msg) => { if (msg.type() === "error") errors.push("console: " + msg.text()); });
  page.on("pageerror", (err) => errors.push("exception: " + err.message));
  page.on("requestfailed", (req) => errors.push("failed: " + req.url()));
  page.on("response", async (resp) => {
    const headers = await resp.allHeaders();
    encodings[new URL(resp.url()).pathname] = headers["content-encoding"] || "identity";
  });
  const response = await page.goto(url, { waitUntil: "load" });
  if (!response || response.status() !== 200) throw new Error("status " + (response && response.status()));
  await page.waitForFunction(() => window.appResult !== undefined);
  const seen = await page.evaluate(() => ({
    appResult: window.appResult,
    background: getComputedStyle(document.body).backgroundColor,
  }));
  console.log(JSON.stringify({ ...seen, encodings, errors }));
} catch (e) {
  console.error("compressed page check failed: " + e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
