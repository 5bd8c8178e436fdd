// Drives the dashboard in headless Chromium as a person would, against a local cloud that
// holds the `iris` dataset and a trained `iris` model (crates/cli/tests/cli.rs sets it up
// and runs this): every page renders real data, reject and approve change production, and
// the prediction form answers. Saves a screenshot of each page; prints one JSON line with
// what it saw, for the Rust test to compare with the API's own answers.
//
//   node dashboard.mjs DASHBOARD_URL_WITH_TOKEN SCREENSHOT_DIR ROW_JSON
import { session } from "./session.mjs";

const [url, screenshots, rowJson] = process.argv.slice(2);
const row = JSON.parse(rowJson);
const { browser, page, errors, open, text } = await session(url, screenshots);
const seen = {};
try {
  // From navigation to the datasets table drawn from the API: first, and with the API warm.
  seen.first_paint_ms = await open("#/datasets", "datasets");
  seen.warm_paint_ms = await open("#/datasets", "datasets");
  seen.datasets = await page.locator("main table tbody tr td:first-child").allTextContents();

  await open("#/datasets/iris", "dataset");
  seen.rows_out = Number(await text("[data-test=rows-out]"));
  seen.histogram_bars = await page.locator("[data-column=sepal_length] svg rect").count();
  seen.species_bars = await page.locator("[data-column=species] svg rect").count();
  seen.rejected_reasons = await page.locator("[data-test=rejected] tbody td:nth-child(3)").allTextContents();

  await open("#/models", "models");
  seen.models = await page.locator("main table tbody tr td:first-child").allTextContents();

  await open("#/models/iris", "model");
  seen.production_before = await text("[data-test=production-version]");
  await page.click("[data-action=reject-1]");
  await page.waitForFunction(() => document.querySelector("[data-test=production-version]")?.textContent === "none");
  seen.production_after_reject = await text("[data-test=production-version]");
  await page.click("[data-action=approve-1]");
  await page.waitForFunction(() => document.querySelector("[data-test=production-version]")?.textContent === "1");
  seen.production_after_approve = await text("[data-test=production-version]");
  seen.events = await page.locator("ol.timeline .kind").allTextContents();
  await page.screenshot({ path: `${screenshots}/model-decided.png`, fullPage: true });

  await open("#/models/iris/predict", "predict-form");
  for (const [name, value] of Object.entries(row)) await page.fill(`#${name}`, String(value));
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-test=prediction]");
  seen.prediction = await text("[data-test=prediction]");
  await page.screenshot({ path: `${screenshots}/predict-answer.png`, fullPage: true });

  // The model page counts that prediction among its requests once CloudWatch has it.
  for (let attempt = 0; attempt < 40 && !(seen.requests >= 1); attempt++) {
    await open("#/models/iris", "model-serving");
    const shown = await page.locator("[data-test=requests]").count();
    seen.requests = shown ? Number(await text("[data-test=requests]")) : 0;
    if (!(seen.requests >= 1)) await page.waitForTimeout(250);
  }

  seen.page_errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
