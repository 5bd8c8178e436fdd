// One headless Chromium page on the dashboard, shared by the browser tests: `open` goes to a
// page and waits until the dashboard says it has drawn it (failing on an error it shows),
// saving a screenshot; page errors and console errors are collected in `errors`.
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

export async function session(url, screenshots) {
  mkdirSync(screenshots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    // Root in CI containers has no user namespace for Chromium's sandbox.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  // Resources answering 404 are expected (a model's drift before the monitor's first report).
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) errors.push(message.text());
  });

  /** Opens `hash` afresh, waits until the page says it has drawn it; the milliseconds that took. */
  const open = async (hash, name) => {
    await page.goto("about:blank"); // a fresh load, not a page already drawn
    const started = Date.now();
    await page.goto(`${url}${hash}`); // url is the printed one: http://127.0.0.1:PORT/?token=…
    await page.waitForFunction((h) => document.body.dataset.ready === h, hash, { timeout: 20000 });
    const drawn = Date.now() - started;
    await page.screenshot({ path: `${screenshots}/${name}.png`, fullPage: true });
    const alert = await page.locator("[role=alert]").allTextContents();
    if (alert.length) throw new Error(`${hash} shows an error: ${alert.join("; ")}`);
    return drawn;
  };
  const text = async (selector) => (await page.locator(selector).first().textContent()).trim();
  return { browser, page, errors, open, text };
}
