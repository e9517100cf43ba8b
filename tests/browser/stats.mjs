// Opens /stats.html in headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core, waits until the page's script has refreshed it from /stats.json twice,
// saves a screenshot, and prints one JSON line: the SVG's box titles, every live number
// in the SVG by its data-k key, the worker slots drawn per farm, the plug-in table's names,
// the number of refreshes, and every console error or uncaught exception. Every wait is bounded; a failure exits
// non-zero with the reason on stderr.
//
//   node stats.mjs http://127.0.0.1:PORT/stats.html screenshot.png
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
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
  const response = await page.goto(url);
  if (!response || response.status() !== 200) throw new Error("status " + (response && response.status()));
  await page.waitForSelector("svg#network");
  await page.waitForFunction(() => Number(document.documentElement.getAttribute("data-updates") || 0) >= 2);
  const seen = await page.evaluate(() => {
    const svg = document.getElementById("network");
    const numbers = {};
    svg.querySelectorAll("[data-k]").forEach((el) => { numbers[el.getAttribute("data-k")] = el.textContent; });
    const slots = {};
    svg.querySelectorAll("[data-board]").forEach((g) => { slots[g.getAttribute("data-board")] = g.querySelectorAll("rect").length; });
    return {
      titles: [...svg.querySelectorAll("text.title")].map((t) => t.firstChild.textContent.trim()),
      numbers,
      slots,
      plugins: [...document.querySelectorAll("#plugins tbody tr")].map((row) => row.cells[0].textContent),
      updates: Number(document.documentElement.getAttribute("data-updates")),
      live: document.getElementById("live").textContent,
    };
  });
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ...seen, errors }));
} catch (e) {
  console.error("stats page check failed: " + e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
