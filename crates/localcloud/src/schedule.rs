//! EventBridge schedules, which the emulator never fires: each function's `Schedule`
//! events fire at their rate as "Scheduled Event"s, invoked asynchronously with Lambda's
//! retries. Rates run on the local cloud's [`Clock`]: at speed 60 `rate(15 minutes)` fires
//! every 15 s. `cron(…)` expressions are not evaluated locally (a warning says so).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_aws::AwsClients;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinHandle;

use crate::Functions;
use crate::clock::Clock;
use crate::events::{dead_letter_url, invoke_with_retries};
use crate::template::{ACCOUNT_ID, REGION, Stack};

/// Fires the stack's schedules until dropped.
pub struct Schedules {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Schedules {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Schedules {
    /// Fires each `rate(…)` schedule once per period of `clock`, the first a period from now.
    pub fn start(clients: &AwsClients, stack: &Stack, functions: Arc<dyn Functions>, clock: &Clock) -> Self {
        let mut tasks = Vec::new();
        for function in &stack.functions {
            for expression in &function.schedules {
                let Some(period) = rate(expression).map(|nominal| clock.real(nominal)) else {
                    tracing::warn!(function = %function.logical_id, %expression, "schedule not fired locally (only rate(…) is)");
                    continue;
                };
                let (clients, function, functions) = (clients.clone(), function.clone(), Arc::clone(&functions));
                let rule = format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{}-{}", stack.name, function.logical_id);
                tasks.push(tokio::spawn(async move {
                    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                    loop {
                        ticks.tick().await;
                        let dead_letter = dead_letter_url(&clients.sqs, &function.async_invoke).await.ok().flatten();
                        let event = scheduled_event(&rule, OffsetDateTime::now_utc());
                        invoke_with_retries(
                            &function.logical_id,
                            &function.async_invoke,
                            &event,
                            dead_letter.as_deref(),
                            &clients.sqs,
                            functions.as_ref(),
                        )
                        .await;
                    }
                }));
            }
        }
        Self { tasks }
    }
}

/// The event EventBridge Scheduler sends for a schedule rule.
pub fn scheduled_event(rule_arn: &str, at: OffsetDateTime) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::now_v7().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": at.format(&Rfc3339).expect("UTC times format"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    })
}

/// The period of `rate(<n> <unit>)`.
fn rate(expression: &str) -> Option<Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(' ')?;
    let count: u64 = count.parse().ok().filter(|&n| n > 0)?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(count * seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_like_eventbridge() {
        assert_eq!(rate("rate(1 day)"), Some(Duration::from_secs(86_400)));
        assert_eq!(rate("rate(5 minutes)"), Some(Duration::from_secs(300)));
        assert_eq!(rate("rate(0 hours)"), None);
        assert_eq!(rate("cron(0 3 * * ? *)"), None);
        assert_eq!(rate("rate(2 fortnights)"), None);
    }
}
