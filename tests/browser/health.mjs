// The model page of a model with traffic and drift (crates/cli/tests/cli.rs runs this after
// the notebook has served and monitored `iris`): prints one JSON line with what the health
// section draws, for the Rust test to check.
//
//   node health.mjs DASHBOARD_URL_WITH_TOKEN SCREENSHOT_DIR
import { session } from "./session.mjs";

const [url, screenshots] = process.argv.slice(2);
const { browser, page, errors, open, text } = await session(url, screenshots);
const seen = {};
try {
  await open("#/models/iris", "model-health");
  seen.requests = Number(await text("[data-test=requests]"));
  seen.drift_score_points = await page.locator('svg[aria-label="drift score per window"] circle').count();
  seen.feature_lines = await page.locator('svg[aria-label="distance to the baseline per feature"] path').count();
  seen.drifting_features = await page.locator("main table td span.bad").allTextContents();
  seen.page_errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
