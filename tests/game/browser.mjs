// The game's browser player: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core. It registers NAME, types `look` and checks that the room's description
// arrives after it, checks the score panel, walks north and back by clicking the exits,
// recalls `look` with the up arrow, prints READY, then waits until WANTED appears among the events
// (pushed live over the websocket) and prints SAW. Every wait is bounded; any failure
// exits non-zero with the reason on stderr, and so does any console error or failed request.
//
//   node browser.mjs http://127.0.0.1:PORT/ogi/game NAME "WANTED TEXT" [screenshot.png]
import { chromium } from "playwright-core";

const [url, name, wanted, screenshot] = process.argv.slice(2);
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
  // Every console error and every failed or refused request (a missing favicon) fails the run.
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
  page.on("requestfailed", (r) => problems.push("request failed: " + r.url()));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`); });
  await page.goto(url);
  await page.fill("input[name=name]", name);
  await Promise.all([page.waitForNavigation(), page.click("#login button")]);
  await page.waitForSelector('body[data-socket="open"]');

  await page.fill("input[name=command]", "look");
  await page.press("input[name=command]", "Enter");
  // The room must arrive after the typed line, so it is the answer to this `look`.
  await page.waitForFunction(() => {
    const lines = [...document.querySelectorAll("#events .ev")];
    const typed = lines.findIndex((l) => l.textContent === "> look");
    return typed >= 0 && lines.slice(typed + 1).some((l) => l.classList.contains("ev-room")
      && l.textContent.startsWith("The Listening Gate"));
  });
  // The panel beside the scrollback shows the score; a room's exits are links that walk;
  // the up arrow brings back the last command.
  await page.waitForFunction(() => document.getElementById("score").textContent.includes("of 50"));
  await page.locator("#events .ev-room").last().locator("a.exit[data-go=north]").click();
  await page.waitForFunction(() => {
    const rooms = [...document.querySelectorAll("#events .ev-room")];
    return rooms.length > 0 && rooms[rooms.length - 1].textContent.startsWith("Front-End Hall");
  });
  await page.locator("#events .ev-room").last().locator("a.exit[data-go=south]").click();
  await page.waitForFunction(() => {
    const rooms = [...document.querySelectorAll("#events .ev-room")];
    return rooms[rooms.length - 1].textContent.startsWith("The Listening Gate");
  });
  await page.focus("input[name=command]");
  await page.keyboard.press("ArrowUp");
  const recalled = await page.inputValue("input[name=command]");
  if (recalled !== "look") throw new Error(`the up arrow recalled ${JSON.stringify(recalled)}, not "look"`);
  await page.fill("input[name=command]", "");
  const cookies = await page.context().cookies();
  const token = cookies.find((c) => c.name === "occgame");
  if (!token) throw new Error("no token cookie was set");
  console.log("READY " + token.value);

  await page.waitForFunction((text) => document.getElementById("events").textContent.includes(text), wanted);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log("SAW " + wanted);
  if (problems.length > 0) throw new Error(problems.join("; "));
} catch (e) {
  console.error("browser player failed: " + e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
