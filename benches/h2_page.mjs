// Loads a page over HTTPS in headless Chromium (playwright-core from tests/browser) ROUNDS
// times, each time in a fresh browser context (nothing cached, a new connection), and prints
// one JSON line: each load's time from navigation start to the load event (ms), the median,
// and the protocols the resources came over.
//
//   node benches/h2_page.mjs https://127.0.0.1:PORT/page.html 15
import { createRequire } from "node:module";
const require = createRequire(new URL("../tests/browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const [url, rounds = "15"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const times = [];
  const protocols = new Set();
  for (let i = 0; i < Number(rounds); i++) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    page.setDefaultTimeout(30000);
    await page.goto(url, { waitUntil: "load" });
    const t = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      return { load: nav.loadEventEnd - nav.startTime,
               protocols: performance.getEntries().map((e) => e.nextHopProtocol).filter(Boolean),
               resources: performance.getEntriesByType("resource").length };
    });
    if (t.resources < 60) throw new Error(`${t.resources} resources, fewer than 60`);
    t.protocols.forEach((p) => protocols.add(p));
    times.push(t.load);
    await context.close();
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(JSON.stringify({ median: sorted[Math.floor(sorted.length / 2)], times: times.map((x) => Math.round(x * 10) / 10), protocols: [...protocols] }));
} catch (e) {
  console.error("page load failed: " + e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
