//! CloudWatch metric alarms, which the emulator stores (with their metric data) but never
//! evaluates. [`evaluate`] decides an alarm's state from its recent periods as CloudWatch
//! does (M out of N datapoints, and its rules for missing data); [`AlarmEvaluator`] runs it
//! for the stack's alarms against the endpoint, records each transition there with
//! SetAlarmState and publishes CloudWatch's notification to the SNS topics among the new
//! state's actions. Only transitions notify, as in AWS.
//!
//! Alarms are created at run time (by Sluice's functions), not declared in the template, so
//! the evaluator finds them by name: every alarm named `{stack}-…` is the stack's.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricAlarm, StandardUnit, StateValue};
use serde_json::{Value, json};
use sluice_aws::{AwsClients, StoreError};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::template::{ACCOUNT_ID, REGION, Stack};

/// How often CloudWatch evaluates an alarm, whatever its period (nominal time).
const EVALUATION_INTERVAL: Duration = Duration::from_secs(60);

/// The reason CloudWatch (and the emulator) gives a newly created alarm.
const INITIAL_REASON: &str = "Unchecked: Initial alarm creation";

/// How CloudWatch writes a datapoint's time in a reason: `22/11/26 10:15:00`.
const DATAPOINT_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[day]/[month]/[year repr:last_two] [hour]:[minute]:[second]");

/// How CloudWatch writes times in notifications: `2026-11-22T10:16:44.959+0000`.
const NOTIFICATION_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Average,
    Sum,
    Minimum,
    Maximum,
    SampleCount,
}

impl Statistic {
    /// From its name in the CloudWatch API (`Maximum`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "Average" => Self::Average,
            "Sum" => Self::Sum,
            "Minimum" => Self::Minimum,
            "Maximum" => Self::Maximum,
            "SampleCount" => Self::SampleCount,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Average => "Average",
            Self::Sum => "Sum",
            Self::Minimum => "Minimum",
            Self::Maximum => "Maximum",
            Self::SampleCount => "SampleCount",
        }
    }

    /// Its name in alarm notifications (`MAXIMUM`, `SAMPLE_COUNT`).
    fn notification_name(self) -> &'static str {
        match self {
            Self::Average => "AVERAGE",
            Self::Sum => "SUM",
            Self::Minimum => "MINIMUM",
            Self::Maximum => "MAXIMUM",
            Self::SampleCount => "SAMPLE_COUNT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonOperator {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl ComparisonOperator {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "GreaterThanOrEqualToThreshold" => Self::GreaterThanOrEqualToThreshold,
            "GreaterThanThreshold" => Self::GreaterThanThreshold,
            "LessThanThreshold" => Self::LessThanThreshold,
            "LessThanOrEqualToThreshold" => Self::LessThanOrEqualToThreshold,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Self::GreaterThanThreshold => "GreaterThanThreshold",
            Self::LessThanThreshold => "LessThanThreshold",
            Self::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThanOrEqualToThreshold => value >= threshold,
            Self::GreaterThanThreshold => value > threshold,
            Self::LessThanThreshold => value < threshold,
            Self::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// How reasons say it: "was greater than or equal to the threshold".
    fn words(self) -> &'static str {
        match self {
            Self::GreaterThanOrEqualToThreshold => "greater than or equal to",
            Self::GreaterThanThreshold => "greater than",
            Self::LessThanThreshold => "less than",
            Self::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }
}

/// `TreatMissingData`: what a period without data counts as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TreatMissingData {
    /// Not counted; with no data at all the alarm has insufficient data.
    #[default]
    Missing,
    /// Not counted; with too little data the alarm keeps its state.
    Ignore,
    Breaching,
    NotBreaching,
}

impl TreatMissingData {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "missing" => Self::Missing,
            "ignore" => Self::Ignore,
            "breaching" => Self::Breaching,
            "notBreaching" => Self::NotBreaching,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Ignore => "ignore",
            Self::Breaching => "breaching",
            Self::NotBreaching => "notBreaching",
        }
    }

    /// How reasons name a substitution for missing data.
    fn substitution(self) -> Option<&'static str> {
        match self {
            Self::Breaching => Some("[Breaching]"),
            Self::NotBreaching => Some("[NonBreaching]"),
            Self::Missing | Self::Ignore => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    /// From its name in the CloudWatch API (`INSUFFICIENT_DATA`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "OK" => Self::Ok,
            "ALARM" => Self::Alarm,
            "INSUFFICIENT_DATA" => Self::InsufficientData,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// What a metric alarm watches and when it is in alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmDefinition {
    pub metric_name: String,
    pub namespace: String,
    /// `(name, value)`
    pub dimensions: Vec<(String, String)>,
    pub statistic: Statistic,
    pub unit: Option<String>,
    pub period_seconds: u32,
    /// N: how many of the most recent periods are evaluated.
    pub evaluation_periods: u32,
    /// M: how many of those must breach; `None` (not set) means all N, and CloudWatch then
    /// words its reasons without "out of the last N".
    pub datapoints_to_alarm: Option<u32>,
    pub threshold: f64,
    pub comparison: ComparisonOperator,
    pub treat_missing_data: TreatMissingData,
}

impl AlarmDefinition {
    fn evaluated_count(&self) -> usize {
        self.evaluation_periods.max(1) as usize
    }

    fn breaching_needed(&self) -> usize {
        self.datapoints_to_alarm.map_or(self.evaluated_count(), |m| (m.max(1) as usize).min(self.evaluated_count()))
    }

    /// How many periods one evaluation looks at: more than N, as CloudWatch retrieves, so
    /// that real datapoints stand in for missing ones before any are substituted. AWS does
    /// not give the number; its documented examples use 5 for N = 3.
    pub fn evaluation_range(&self) -> usize {
        let n = self.evaluated_count();
        n + (n / 3).max(2)
    }
}

/// One period's statistic, `None` when the period has no data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    pub start: OffsetDateTime,
    pub value: Option<f64>,
}

/// A datapoint an evaluation used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datapoint {
    /// The start of its period.
    pub timestamp: OffsetDateTime,
    pub value: f64,
}

/// A change of an alarm's state, with CloudWatch's reason for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: AlarmState,
    pub to: AlarmState,
    pub reason: String,
    /// The real datapoints the decision rests on, newest first.
    pub datapoints: Vec<Datapoint>,
}

/// The state an alarm is in after an evaluation of `periods` (its evaluation range, oldest
/// first), if that differs from `current`. Follows CloudWatch's documented rules: the most
/// recent N real datapoints decide when there are that many; with fewer, missing ones are
/// substituted only as far as needed (`breaching`, `notBreaching`), or left out (`missing`,
/// `ignore`) in which case a real non-breaching datapoint means OK, a breaching one at
/// least M periods old with nothing better after it means ALARM, and otherwise the data is
/// insufficient (`missing`) or the state is kept (`ignore`).
pub fn evaluate(alarm: &AlarmDefinition, periods: &[Period], current: AlarmState) -> Option<Transition> {
    let (to, reason, datapoints) = decide(alarm, periods)?;
    (to != current).then_some(Transition { from: current, to, reason, datapoints })
}

/// The state the data puts the alarm in, why, and on which datapoints; `None` when the data
/// decides nothing and the alarm keeps its state.
fn decide(alarm: &AlarmDefinition, periods: &[Period]) -> Option<(AlarmState, String, Vec<Datapoint>)> {
    let n = alarm.evaluated_count();
    let m = alarm.breaching_needed();
    let treatment = alarm.treat_missing_data;
    // Newest first, each with its age in periods (1: the most recent period).
    let existing: Vec<(usize, Datapoint)> = periods
        .iter()
        .rev()
        .enumerate()
        .filter_map(|(i, p)| p.value.map(|value| (i + 1, Datapoint { timestamp: p.start, value })))
        .collect();
    if existing.is_empty() {
        let state = match treatment {
            TreatMissingData::Missing => return Some((AlarmState::InsufficientData, unknown_reason(n), vec![])),
            TreatMissingData::Ignore => return None,
            TreatMissingData::Breaching => AlarmState::Alarm,
            TreatMissingData::NotBreaching => AlarmState::Ok,
        };
        let substitution = treatment.substitution().expect("breaching and notBreaching substitute");
        let reason = format!(
            "Threshold Crossed: no datapoints were received for {n} period{s} and {n} missing datapoint{s} {was_were} treated as {substitution}.",
            s = plural(n),
            was_were = was_were(n),
        );
        return Some((state, reason, vec![]));
    }
    let evaluated: Vec<(usize, Datapoint)> = existing.into_iter().take(n).collect();
    let filled = n - evaluated.len();
    let (breaching, not_breaching): (Vec<_>, Vec<_>) =
        evaluated.iter().partition(|(_, d)| alarm.comparison.breaches(d.value, alarm.threshold));
    let filled_breaching = if treatment == TreatMissingData::Breaching { filled } else { 0 };
    let substituted = matches!(treatment, TreatMissingData::Breaching | TreatMissingData::NotBreaching);
    let oldest_breaching_age = breaching.iter().map(|(age, _)| *age).max().unwrap_or(0);
    let state = if breaching.len() + filled_breaching >= m {
        AlarmState::Alarm
    } else if filled == 0 || substituted || !not_breaching.is_empty() {
        AlarmState::Ok
    } else if treatment == TreatMissingData::Missing && oldest_breaching_age >= m {
        // CloudWatch's guard against alarms held back by intermittent data: breaching at
        // least M periods ago and nothing but missing data since.
        AlarmState::Alarm
    } else if treatment == TreatMissingData::Ignore {
        return None;
    } else {
        return Some((AlarmState::InsufficientData, unknown_reason(filled), vec![]));
    };
    let datapoints: Vec<Datapoint> = evaluated.iter().map(|(_, d)| *d).collect();
    let crossed: Vec<Datapoint> = match state {
        AlarmState::Alarm => breaching.iter().map(|(_, d)| *d).collect(),
        _ => not_breaching.iter().map(|(_, d)| *d).collect(),
    };
    let substituted_alike = match (state, treatment) {
        (AlarmState::Alarm, TreatMissingData::Breaching) | (AlarmState::Ok, TreatMissingData::NotBreaching) => filled,
        _ => 0,
    };
    let reason = threshold_crossed(alarm, state, &crossed, substituted_alike, filled, n, m);
    Some((state, reason, datapoints))
}

/// CloudWatch's "Threshold Crossed" reason, e.g. `Threshold Crossed: 2 out of the last 3
/// datapoints [0.4 (22/11/26 10:15:00), 0.3 (22/11/26 10:14:00)] were greater than or equal
/// to the threshold (0.1) (minimum 2 datapoints for OK -> ALARM transition).`. `crossed` are
/// the real datapoints on the new state's side of the threshold, newest first;
/// `substituted_alike` the missing ones counted on that side too, of `filled` substituted.
fn threshold_crossed(
    alarm: &AlarmDefinition,
    state: AlarmState,
    crossed: &[Datapoint],
    substituted_alike: usize,
    filled: usize,
    n: usize,
    m: usize,
) -> String {
    let count = crossed.len() + substituted_alike;
    let listed = if crossed.is_empty() {
        String::new()
    } else {
        let values: Vec<String> = crossed
            .iter()
            .map(|d| format!("{:?} ({})", d.value, d.timestamp.format(DATAPOINT_TIME).expect("UTC times format")))
            .collect();
        format!(" [{}]", values.join(", "))
    };
    let negation = if state == AlarmState::Alarm { "" } else { "not " };
    let comparison =
        format!("{} {negation}{} the threshold ({:?})", was_were(count), alarm.comparison.words(), alarm.threshold);
    let substituted = match alarm.treat_missing_data.substitution() {
        Some(substitution) if filled > 0 => {
            format!(" and {filled} missing datapoint{} {} treated as {substitution}", plural(filled), was_were(filled))
        }
        _ => String::new(),
    };
    if alarm.datapoints_to_alarm.is_none() {
        return format!("Threshold Crossed: {count} datapoint{}{listed} {comparison}{substituted}.", plural(count));
    }
    let (minimum, direction) = match state {
        AlarmState::Alarm => (m, "OK -> ALARM"),
        _ => (n - m + 1, "ALARM -> OK"),
    };
    format!(
        "Threshold Crossed: {count} out of the last {n} datapoints{listed} {comparison}{substituted} (minimum {minimum} datapoint{} for {direction} transition).",
        plural(minimum)
    )
}

fn unknown_reason(unknown: usize) -> String {
    format!("Insufficient Data: {unknown} datapoint{} {} unknown.", plural(unknown), was_were(unknown))
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn was_were(count: usize) -> &'static str {
    if count == 1 { "was" } else { "were" }
}

/// A metric alarm as DescribeAlarms gives it: its definition and its actions.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub configuration_updated: OffsetDateTime,
    pub actions_enabled: bool,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub definition: AlarmDefinition,
}

impl Alarm {
    /// What CloudWatch does when the alarm enters `state`.
    pub fn actions_for(&self, state: AlarmState) -> &[String] {
        match state {
            AlarmState::Ok => &self.ok_actions,
            AlarmState::Alarm => &self.alarm_actions,
            AlarmState::InsufficientData => &self.insufficient_data_actions,
        }
    }

    /// `(region, account)` from the alarm's ARN.
    fn region_and_account(&self) -> (&str, &str) {
        let mut parts = self.arn.split(':').skip(3);
        (parts.next().unwrap_or(REGION), parts.next().unwrap_or(ACCOUNT_ID))
    }
}

/// The JSON message CloudWatch publishes to an alarm's SNS actions when its state changes.
pub fn notification(alarm: &Alarm, transition: &Transition, changed_at: OffsetDateTime) -> Value {
    let definition = &alarm.definition;
    let (region, account) = alarm.region_and_account();
    let dimensions: Vec<Value> =
        definition.dimensions.iter().map(|(name, value)| json!({ "value": value, "name": name })).collect();
    let mut trigger = json!({
        "MetricName": definition.metric_name,
        "Namespace": definition.namespace,
        "StatisticType": "Statistic",
        "Statistic": definition.statistic.notification_name(),
        "Unit": definition.unit,
        "Dimensions": dimensions,
        "Period": definition.period_seconds,
        "EvaluationPeriods": definition.evaluation_periods,
        "ComparisonOperator": definition.comparison.name(),
        "Threshold": definition.threshold,
        "TreatMissingData": definition.treat_missing_data.name(),
        "EvaluateLowSampleCountPercentile": "",
    });
    // CloudWatch only sends it when the alarm sets it.
    if let Some(m) = definition.datapoints_to_alarm {
        trigger["DatapointsToAlarm"] = json!(m);
    }
    json!({
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": notification_time(alarm.configuration_updated),
        "NewStateValue": transition.to.name(),
        "NewStateReason": transition.reason,
        "StateChangeTime": notification_time(changed_at),
        "Region": region_display_name(region),
        "AlarmArn": alarm.arn,
        "OldStateValue": transition.from.name(),
        "OKActions": alarm.ok_actions,
        "AlarmActions": alarm.alarm_actions,
        "InsufficientDataActions": alarm.insufficient_data_actions,
        "Trigger": trigger,
    })
}

fn notification_time(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC).format(NOTIFICATION_TIME).expect("UTC times format")
}

/// The SNS subject of an alarm notification: `ALARM: "name" in US East (N. Virginia)`. A
/// long name is cut short with "..." to keep the subject within SNS's 100 characters.
pub fn notification_subject(alarm_name: &str, state: AlarmState, region: &str) -> String {
    const LIMIT: usize = 100;
    let region = region_display_name(region);
    let subject = format!("{}: \"{alarm_name}\" in {region}", state.name());
    if subject.chars().count() <= LIMIT {
        return subject;
    }
    let room = LIMIT.saturating_sub(format!("{}: \"...\" in {region}", state.name()).chars().count());
    let shortened: String = alarm_name.chars().take(room).collect();
    format!("{}: \"{shortened}...\" in {region}", state.name())
}

/// The name CloudWatch's notifications give a region.
fn region_display_name(region: &str) -> &str {
    match region {
        "us-east-1" => "US East (N. Virginia)",
        "us-east-2" => "US East (Ohio)",
        "us-west-1" => "US West (N. California)",
        "us-west-2" => "US West (Oregon)",
        "ca-central-1" => "Canada (Central)",
        "sa-east-1" => "South America (Sao Paulo)",
        "eu-west-1" => "EU (Ireland)",
        "eu-west-2" => "EU (London)",
        "eu-west-3" => "EU (Paris)",
        "eu-central-1" => "EU (Frankfurt)",
        "eu-north-1" => "EU (Stockholm)",
        "eu-south-1" => "EU (Milan)",
        "ap-south-1" => "Asia Pacific (Mumbai)",
        "ap-northeast-1" => "Asia Pacific (Tokyo)",
        "ap-northeast-2" => "Asia Pacific (Seoul)",
        "ap-southeast-1" => "Asia Pacific (Singapore)",
        "ap-southeast-2" => "Asia Pacific (Sydney)",
        other => other,
    }
}

/// Evaluates the stack's alarms on the endpoint until dropped.
pub struct AlarmEvaluator {
    task: JoinHandle<()>,
}

impl Drop for AlarmEvaluator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AlarmEvaluator {
    /// Evaluates every alarm named `{stack}-…` as often as CloudWatch would on `clock` (at
    /// least every second), each over its periods as long as they last on `clock`. Errors
    /// are logged and the evaluation goes on.
    pub fn start(clients: &AwsClients, stack: &Stack, clock: &Clock) -> Self {
        let mut evaluator = Evaluator {
            cloudwatch: aws_sdk_cloudwatch::Client::new(&clients.config),
            sns: aws_sdk_sns::Client::new(&clients.config),
            name_prefix: format!("{}-", stack.name),
            clock: *clock,
            known: HashMap::new(),
            unsupported: HashSet::new(),
        };
        let interval = clock.real(EVALUATION_INTERVAL).min(Duration::from_secs(1));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                evaluator.evaluate_all().await;
            }
        });
        Self { task }
    }
}

/// What the evaluator last knew of an alarm.
struct Known {
    state: AlarmState,
    reason: String,
    /// The end (Unix seconds) of the last period it was evaluated through.
    evaluated_through: i64,
}

struct Evaluator {
    cloudwatch: aws_sdk_cloudwatch::Client,
    sns: aws_sdk_sns::Client,
    name_prefix: String,
    clock: Clock,
    known: HashMap<String, Known>,
    /// Alarms already reported as not evaluated locally, so the log says it once.
    unsupported: HashSet<String>,
}

impl Evaluator {
    async fn evaluate_all(&mut self) {
        let listed = match self.stack_alarms().await {
            Ok(listed) => listed,
            Err(err) => {
                tracing::warn!(error = %err, "cannot list the stack's alarms");
                return;
            }
        };
        // A deleted alarm is forgotten, so one created again under its name starts afresh.
        let names: HashSet<&str> = listed.iter().filter_map(MetricAlarm::alarm_name).collect();
        self.known.retain(|name, _| names.contains(name.as_str()));
        for stored in &listed {
            let name = stored.alarm_name().unwrap_or_default();
            let alarm = match alarm_from(stored) {
                Ok(alarm) => alarm,
                Err(why) => {
                    if self.unsupported.insert(name.to_owned()) {
                        tracing::warn!(alarm = %name, %why, "alarm not evaluated locally");
                    }
                    continue;
                }
            };
            if let Err(err) = self.evaluate_alarm(&alarm, stored).await {
                tracing::warn!(alarm = %name, error = %err, "alarm evaluation failed");
            }
        }
    }

    async fn stack_alarms(&self) -> Result<Vec<MetricAlarm>, StoreError> {
        let mut alarms = Vec::new();
        let mut next_token = None;
        loop {
            let page = self
                .cloudwatch
                .describe_alarms()
                .alarm_name_prefix(&self.name_prefix)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| StoreError::new("CloudWatch", "DescribeAlarms", e))?;
            alarms.extend(page.metric_alarms.unwrap_or_default());
            next_token = page.next_token;
            if next_token.is_none() {
                return Ok(alarms);
            }
        }
    }

    async fn evaluate_alarm(&mut self, alarm: &Alarm, stored: &MetricAlarm) -> Result<(), StoreError> {
        let stored_state = stored.state_value().and_then(|s| AlarmState::parse(s.as_str()));
        let stored_reason = stored.state_reason().unwrap_or_default();
        let known = self.known.remove(&alarm.name);
        // The emulator starts every alarm it is given, new or updated, in OK "Unchecked".
        // CloudWatch starts a new alarm in INSUFFICIENT_DATA and leaves an updated one's state
        // as it was: put that right before evaluating.
        let just_put = stored_state == Some(AlarmState::Ok) && stored_reason == INITIAL_REASON;
        let (mut state, mut reason) = match (&known, just_put) {
            (Some(known), true) => (known.state, known.reason.clone()),
            (None, true) => (AlarmState::InsufficientData, INITIAL_REASON.to_owned()),
            (_, false) => (stored_state.unwrap_or(AlarmState::InsufficientData), stored_reason.to_owned()),
        };
        if just_put {
            self.set_state(&alarm.name, state, &reason, &json!({})).await?;
        }
        let period = real_period_seconds(&alarm.definition, &self.clock);
        let now = OffsetDateTime::now_utc();
        let complete_through = now.unix_timestamp() - now.unix_timestamp().rem_euclid(period);
        let evaluated_through = known.as_ref().map(|k| k.evaluated_through);
        // CloudWatch evaluates complete periods; each is evaluated once unless the alarm changed.
        if just_put || evaluated_through != Some(complete_through) {
            let periods = self.periods(&alarm.definition, period, complete_through).await?;
            if let Some(transition) = evaluate(&alarm.definition, &periods, state) {
                let reason_data = reason_data(&alarm.definition, &transition, now);
                self.set_state(&alarm.name, transition.to, &transition.reason, &reason_data).await?;
                tracing::info!(
                    alarm = %alarm.name, from = transition.from.name(), to = transition.to.name(),
                    reason = %transition.reason, "alarm state changed"
                );
                self.notify(alarm, &transition, now).await;
                (state, reason) = (transition.to, transition.reason);
            }
        }
        self.known.insert(alarm.name.clone(), Known { state, reason, evaluated_through: complete_through });
        Ok(())
    }

    /// The statistic of each period of the alarm's evaluation range that ends at `end`,
    /// oldest first. Each period is asked for alone: the emulator groups datapoints into
    /// periods counted from the first datapoint, not from the clock.
    async fn periods(&self, definition: &AlarmDefinition, period: i64, end: i64) -> Result<Vec<Period>, StoreError> {
        let dimensions: Vec<Dimension> = definition
            .dimensions
            .iter()
            .map(|(name, value)| Dimension::builder().name(name).value(value).build())
            .collect();
        let mut periods = Vec::new();
        for index in (1..=definition.evaluation_range() as i64).rev() {
            let start = end - index * period;
            let output = self
                .cloudwatch
                .get_metric_statistics()
                .namespace(&definition.namespace)
                .metric_name(&definition.metric_name)
                .set_dimensions(Some(dimensions.clone()))
                .start_time(DateTime::from_secs(start))
                .end_time(DateTime::from_secs(start + period))
                .period(i32::try_from(period).unwrap_or(i32::MAX))
                .statistics(definition.statistic.name().into())
                .set_unit(definition.unit.as_deref().map(StandardUnit::from))
                .send()
                .await
                .map_err(|e| StoreError::new("CloudWatch", "GetMetricStatistics", e))?;
            let value = output.datapoints().first().and_then(|datapoint| match definition.statistic {
                Statistic::Average => datapoint.average(),
                Statistic::Sum => datapoint.sum(),
                Statistic::Minimum => datapoint.minimum(),
                Statistic::Maximum => datapoint.maximum(),
                Statistic::SampleCount => datapoint.sample_count(),
            });
            let start = OffsetDateTime::from_unix_timestamp(start).expect("period starts are recent times");
            periods.push(Period { start, value });
        }
        Ok(periods)
    }

    async fn set_state(
        &self,
        alarm: &str,
        state: AlarmState,
        reason: &str,
        reason_data: &Value,
    ) -> Result<(), StoreError> {
        self.cloudwatch
            .set_alarm_state()
            .alarm_name(alarm)
            .state_value(StateValue::from(state.name()))
            .state_reason(reason)
            .state_reason_data(reason_data.to_string())
            .send()
            .await
            .map_err(|e| StoreError::new("CloudWatch", "SetAlarmState", e))?;
        Ok(())
    }

    /// Publishes the notification to the SNS topics among the new state's actions.
    async fn notify(&self, alarm: &Alarm, transition: &Transition, changed_at: OffsetDateTime) {
        if !alarm.actions_enabled {
            return;
        }
        let subject = notification_subject(&alarm.name, transition.to, alarm.region_and_account().0);
        let message = notification(alarm, transition, changed_at).to_string();
        for action in alarm.actions_for(transition.to) {
            if !action.starts_with("arn:aws:sns:") {
                tracing::warn!(alarm = %alarm.name, %action, "only SNS alarm actions are performed locally");
                continue;
            }
            let published = self.sns.publish().topic_arn(action).subject(&subject).message(&message).send().await;
            if let Err(err) = published {
                tracing::warn!(alarm = %alarm.name, %action, error = %sluice_aws::error_chain(err), "cannot publish the alarm notification");
            }
        }
    }
}

/// How long one of the alarm's periods lasts on `clock`, in whole seconds (the emulator
/// reads query times to the second), at least one.
fn real_period_seconds(definition: &AlarmDefinition, clock: &Clock) -> i64 {
    let nominal = Duration::from_secs(u64::from(definition.period_seconds));
    (clock.real(nominal).as_secs_f64().round() as i64).max(1)
}

/// The `StateReasonData` CloudWatch records with a state it sets.
fn reason_data(definition: &AlarmDefinition, transition: &Transition, evaluated_at: OffsetDateTime) -> Value {
    let evaluated: Vec<Value> = transition
        .datapoints
        .iter()
        .map(|d| json!({ "timestamp": notification_time(d.timestamp), "value": d.value }))
        .collect();
    json!({
        "version": "1.0",
        "queryDate": notification_time(evaluated_at),
        "statistic": definition.statistic.name(),
        "period": definition.period_seconds,
        "recentDatapoints": transition.datapoints.iter().map(|d| d.value).collect::<Vec<_>>(),
        "threshold": definition.threshold,
        "evaluatedDatapoints": evaluated,
    })
}

/// The alarm DescribeAlarms describes, or why it is not evaluated locally.
fn alarm_from(stored: &MetricAlarm) -> Result<Alarm, String> {
    if !stored.metrics().is_empty() {
        return Err("metric math alarms are not evaluated locally".into());
    }
    if let Some(percentile) = stored.extended_statistic() {
        return Err(format!("extended statistic {percentile} is not evaluated locally"));
    }
    let statistic = stored.statistic().map(|s| s.as_str()).unwrap_or_default();
    let comparison = stored.comparison_operator().map(|c| c.as_str()).unwrap_or_default();
    let treat_missing_data = stored.treat_missing_data().unwrap_or("missing");
    let positive = |value: Option<i32>, what: &str| {
        value.and_then(|v| u32::try_from(v).ok()).filter(|&v| v > 0).ok_or_else(|| format!("it has no {what}"))
    };
    let definition = AlarmDefinition {
        metric_name: stored.metric_name().ok_or("it has no metric name")?.to_owned(),
        namespace: stored.namespace().unwrap_or_default().to_owned(),
        dimensions: stored
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap_or_default().to_owned(), d.value().unwrap_or_default().to_owned()))
            .collect(),
        statistic: Statistic::parse(statistic).ok_or_else(|| format!("statistic {statistic:?} is not supported"))?,
        unit: stored.unit().map(|u| u.as_str().to_owned()),
        period_seconds: positive(stored.period(), "period")?,
        evaluation_periods: positive(stored.evaluation_periods(), "evaluation periods")?,
        datapoints_to_alarm: stored.datapoints_to_alarm().and_then(|m| u32::try_from(m).ok()),
        threshold: stored.threshold().ok_or("it has no threshold")?,
        comparison: ComparisonOperator::parse(comparison)
            .ok_or_else(|| format!("comparison {comparison:?} is not evaluated locally"))?,
        treat_missing_data: TreatMissingData::parse(treat_missing_data)
            .ok_or_else(|| format!("TreatMissingData {treat_missing_data:?} is not supported"))?,
    };
    let configuration_updated = stored
        .alarm_configuration_updated_timestamp()
        .and_then(|t| OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    Ok(Alarm {
        name: stored.alarm_name().unwrap_or_default().to_owned(),
        arn: stored.alarm_arn().unwrap_or_default().to_owned(),
        description: stored.alarm_description().map(str::to_owned),
        configuration_updated,
        actions_enabled: stored.actions_enabled().unwrap_or(true),
        ok_actions: stored.ok_actions().to_vec(),
        alarm_actions: stored.alarm_actions().to_vec(),
        insufficient_data_actions: stored.insufficient_data_actions().to_vec(),
        definition,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn definition(comparison: ComparisonOperator, threshold: f64) -> AlarmDefinition {
        AlarmDefinition {
            metric_name: "FeatureDrift".into(),
            namespace: "Sluice".into(),
            dimensions: vec![("Model".into(), "m1".into())],
            statistic: Statistic::Maximum,
            unit: None,
            period_seconds: 60,
            evaluation_periods: 3,
            datapoints_to_alarm: None,
            threshold,
            comparison,
            treat_missing_data: TreatMissingData::Missing,
        }
    }

    /// Minute-long periods, oldest first, the last starting at `last`.
    fn periods(values: &[Option<f64>], last: OffsetDateTime) -> Vec<Period> {
        let count = values.len() as i64;
        (0..count)
            .zip(values)
            .map(|(i, &value)| Period { start: last - time::Duration::minutes(count - 1 - i), value })
            .collect()
    }

    /// The docs' notation: `0` not breaching, `X` breaching, `-` missing; oldest first.
    fn pattern(text: &str) -> Vec<Period> {
        let values: Vec<Option<f64>> = text
            .split_whitespace()
            .map(|point| match point {
                "0" => Some(0.0),
                "X" => Some(5.0),
                _ => None,
            })
            .collect();
        periods(&values, datetime!(2026-11-22 10:15 UTC))
    }

    const ALL_STATES: [AlarmState; 3] = [AlarmState::Ok, AlarmState::Alarm, AlarmState::InsufficientData];

    /// The tables of "Configuring how CloudWatch alarms treat missing data" (CloudWatch User
    /// Guide): for each row of datapoints, the state under `missing`, `ignore`, `breaching`
    /// and `notBreaching`; `None` is "Retain current state".
    #[test]
    fn the_documented_missing_data_examples_hold() {
        use AlarmState::{Alarm as A, InsufficientData as I, Ok as O};
        let three_of_three: [(&str, [Option<AlarmState>; 4]); 6] = [
            ("0 - X - X", [Some(O), Some(O), Some(O), Some(O)]),
            ("0 - - - -", [Some(O), Some(O), Some(O), Some(O)]),
            ("- - - - -", [Some(I), None, Some(A), Some(O)]),
            ("0 X X - X", [Some(A), Some(A), Some(A), Some(A)]),
            ("- - - - X", [Some(I), None, Some(A), Some(O)]),
            ("X - - - -", [Some(A), None, Some(A), Some(O)]),
        ];
        let two_of_three: [(&str, [Option<AlarmState>; 4]); 5] = [
            ("0 - X - X", [Some(A), Some(A), Some(A), Some(A)]),
            ("0 0 X 0 X", [Some(A), Some(A), Some(A), Some(A)]),
            ("0 - X - -", [Some(O), Some(O), Some(A), Some(O)]),
            ("- - - - 0", [Some(O), Some(O), Some(A), Some(O)]),
            ("- - - - X", [Some(I), None, Some(A), Some(O)]),
        ];
        let treatments = [
            TreatMissingData::Missing,
            TreatMissingData::Ignore,
            TreatMissingData::Breaching,
            TreatMissingData::NotBreaching,
        ];
        for (datapoints_to_alarm, table) in [(3, &three_of_three[..]), (2, &two_of_three[..])] {
            for (row, expected) in table {
                for (treatment, expected) in treatments.iter().zip(expected) {
                    let alarm = AlarmDefinition {
                        datapoints_to_alarm: Some(datapoints_to_alarm),
                        treat_missing_data: *treatment,
                        ..definition(ComparisonOperator::GreaterThanThreshold, 1.0)
                    };
                    // The docs' examples retrieve five datapoints for three evaluation periods.
                    assert_eq!(alarm.evaluation_range(), 5);
                    for current in ALL_STATES {
                        let after = evaluate(&alarm, &pattern(row), current).map_or(current, |t| t.to);
                        assert_eq!(
                            after,
                            expected.unwrap_or(current),
                            "{datapoints_to_alarm} of 3, {row}, {}, from {}",
                            treatment.name(),
                            current.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn only_changes_of_state_are_transitions() {
        let alarm = definition(ComparisonOperator::GreaterThanOrEqualToThreshold, 1.0);
        let breaching = pattern("- - X X X");
        let transition = evaluate(&alarm, &breaching, AlarmState::InsufficientData).unwrap();
        assert_eq!((transition.from, transition.to), (AlarmState::InsufficientData, AlarmState::Alarm));
        assert_eq!(transition.datapoints.len(), 3);
        assert_eq!(evaluate(&alarm, &breaching, AlarmState::Alarm), None);
    }

    /// Reasons CloudWatch gave in notifications captured from AWS, reproduced from the same data.
    #[test]
    fn reasons_are_worded_as_cloudwatch_words_them() {
        let reason = |alarm: &AlarmDefinition, periods: &[Period], from: AlarmState| {
            evaluate(alarm, periods, from).expect("a transition").reason
        };

        let m_of_n = AlarmDefinition {
            datapoints_to_alarm: Some(2),
            ..definition(ComparisonOperator::GreaterThanOrEqualToThreshold, 0.1)
        };
        let data = periods(&[None, None, Some(0.05), Some(0.3), Some(0.4)], datetime!(2026-11-22 10:15 UTC));
        assert_eq!(
            reason(&m_of_n, &data, AlarmState::Ok),
            "Threshold Crossed: 2 out of the last 3 datapoints [0.4 (22/11/26 10:15:00), 0.3 (22/11/26 10:14:00)] \
             were greater than or equal to the threshold (0.1) (minimum 2 datapoints for OK -> ALARM transition)."
        );

        let health_check = AlarmDefinition {
            evaluation_periods: 2,
            datapoints_to_alarm: Some(2),
            treat_missing_data: TreatMissingData::Breaching,
            ..definition(ComparisonOperator::LessThanThreshold, 1.0)
        };
        let data = periods(&[None, None, Some(3.0), Some(3.0)], datetime!(2023-02-18 16:42 UTC));
        assert_eq!(
            reason(&health_check, &data, AlarmState::Alarm),
            "Threshold Crossed: 2 out of the last 2 datapoints [3.0 (18/02/23 16:42:00), 3.0 (18/02/23 16:41:00)] \
             were not less than the threshold (1.0) (minimum 1 datapoint for ALARM -> OK transition)."
        );

        let five = AlarmDefinition {
            evaluation_periods: 5,
            datapoints_to_alarm: Some(3),
            ..definition(ComparisonOperator::GreaterThanThreshold, 0.0)
        };
        let data = periods(
            &[None, None, Some(1.0), Some(0.0), Some(1.0), Some(0.0), Some(0.0)],
            datetime!(2021-12-21 06:45 UTC),
        );
        assert_eq!(
            reason(&five, &data, AlarmState::Alarm),
            "Threshold Crossed: 3 out of the last 5 datapoints [0.0 (21/12/21 06:45:00), 0.0 (21/12/21 06:44:00), \
             0.0 (21/12/21 06:42:00)] were not greater than the threshold (0.0) (minimum 3 datapoints for ALARM -> OK transition)."
        );

        let sparse = AlarmDefinition {
            evaluation_periods: 20,
            datapoints_to_alarm: Some(1),
            treat_missing_data: TreatMissingData::NotBreaching,
            ..definition(ComparisonOperator::GreaterThanOrEqualToThreshold, 1.0)
        };
        let mut values = vec![None; sparse.evaluation_range() - 1];
        values.push(Some(613.0));
        let data = periods(&values, datetime!(2024-03-16 12:15 UTC));
        assert_eq!(
            reason(&sparse, &data, AlarmState::Ok),
            "Threshold Crossed: 1 out of the last 20 datapoints [613.0 (16/03/24 12:15:00)] was greater than or equal \
             to the threshold (1.0) and 19 missing datapoints were treated as [NonBreaching] (minimum 1 datapoint for \
             OK -> ALARM transition)."
        );

        // Without DatapointsToAlarm CloudWatch leaves out "out of the last N" and the minimum.
        let single = AlarmDefinition {
            evaluation_periods: 1,
            ..definition(ComparisonOperator::GreaterThanOrEqualToThreshold, 5.0)
        };
        let data = periods(&[None, None, Some(8.0)], datetime!(2024-07-05 15:19 UTC));
        assert_eq!(
            reason(&single, &data, AlarmState::Ok),
            "Threshold Crossed: 1 datapoint [8.0 (05/07/24 15:19:00)] was greater than or equal to the threshold (5.0)."
        );

        let quiet = pattern("- - - - -");
        let missing = definition(ComparisonOperator::GreaterThanThreshold, 1.0);
        assert_eq!(reason(&missing, &quiet, AlarmState::Ok), "Insufficient Data: 3 datapoints were unknown.");
        let breaching = AlarmDefinition { treat_missing_data: TreatMissingData::Breaching, ..missing };
        assert_eq!(
            reason(&breaching, &quiet, AlarmState::Ok),
            "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were treated as [Breaching]."
        );
    }

    /// The `Message` of an alarm notification captured from AWS (delivered to Lambda via SNS).
    const CAPTURED_NOTIFICATION: &str = r#"{"AlarmName":"api-jideola domain alarm","AlarmDescription":"This metric checks the status of the api-jideola.com health check.","AWSAccountId":"951708231033","AlarmConfigurationUpdatedTimestamp":"2023-02-18T16:41:38.351+0000","NewStateValue":"OK","NewStateReason":"Threshold Crossed: 2 out of the last 2 datapoints [3.0 (18/02/23 16:42:00), 3.0 (18/02/23 16:41:00)] were not less than the threshold (1.0) (minimum 1 datapoint for ALARM -> OK transition).","StateChangeTime":"2023-02-18T16:43:21.231+0000","Region":"US East (N. Virginia)","AlarmArn":"arn:aws:cloudwatch:us-east-1:951708231033:alarm:api-jideola domain alarm","OldStateValue":"ALARM","OKActions":["arn:aws:sns:us-east-1:951708231033:guardian"],"AlarmActions":["arn:aws:sns:us-east-1:951708231033:guardian"],"InsufficientDataActions":["arn:aws:sns:us-east-1:951708231033:guardian"],"Trigger":{"MetricName":"HealthCheckStatus","Namespace":"AWS/Route53","StatisticType":"Statistic","Statistic":"SAMPLE_COUNT","Unit":null,"Dimensions":[{"value":"afdf0e5a-b5ec-4eb0-8140-4fb83e928df6","name":"HealthCheckId"}],"Period":60,"EvaluationPeriods":2,"DatapointsToAlarm":2,"ComparisonOperator":"LessThanThreshold","Threshold":1.0,"TreatMissingData":"breaching","EvaluateLowSampleCountPercentile":""}}"#;

    #[test]
    fn notifications_have_the_shape_cloudwatch_sends() {
        let topic = "arn:aws:sns:us-east-1:951708231033:guardian".to_owned();
        let alarm = Alarm {
            name: "api-jideola domain alarm".into(),
            arn: "arn:aws:cloudwatch:us-east-1:951708231033:alarm:api-jideola domain alarm".into(),
            description: Some("This metric checks the status of the api-jideola.com health check.".into()),
            configuration_updated: datetime!(2023-02-18 16:41:38.351 UTC),
            actions_enabled: true,
            ok_actions: vec![topic.clone()],
            alarm_actions: vec![topic.clone()],
            insufficient_data_actions: vec![topic],
            definition: AlarmDefinition {
                metric_name: "HealthCheckStatus".into(),
                namespace: "AWS/Route53".into(),
                dimensions: vec![("HealthCheckId".into(), "afdf0e5a-b5ec-4eb0-8140-4fb83e928df6".into())],
                statistic: Statistic::SampleCount,
                unit: None,
                period_seconds: 60,
                evaluation_periods: 2,
                datapoints_to_alarm: Some(2),
                threshold: 1.0,
                comparison: ComparisonOperator::LessThanThreshold,
                treat_missing_data: TreatMissingData::Breaching,
            },
        };
        let data = periods(&[None, None, Some(3.0), Some(3.0)], datetime!(2023-02-18 16:42 UTC));
        let transition = evaluate(&alarm.definition, &data, AlarmState::Alarm).unwrap();
        let message = notification(&alarm, &transition, datetime!(2023-02-18 16:43:21.231 UTC));
        let captured: Value = serde_json::from_str(CAPTURED_NOTIFICATION).unwrap();
        assert_eq!(message, captured);
        assert_eq!(
            notification_subject(&alarm.name, transition.to, "us-east-1"),
            r#"OK: "api-jideola domain alarm" in US East (N. Virginia)"#
        );

        // Typed Lambda handlers read it too.
        let typed: aws_lambda_events::sns::CloudWatchAlarmPayload = serde_json::from_value(message).unwrap();
        assert_eq!(typed.trigger.dimensions[0].name, "HealthCheckId");
    }

    #[test]
    fn subjects_keep_within_what_sns_accepts_as_cloudwatch_does() {
        // A subject captured from AWS: the name is cut so the subject is 100 characters.
        let name =
            "SharedInfra-Alpha-Database-DatabaseInstanceObservabilityHighDatabaseConnectionsAlarm5CD1334F-FetIEoRn5hgP";
        let subject = notification_subject(name, AlarmState::Alarm, "eu-south-1");
        assert_eq!(
            subject,
            r#"ALARM: "SharedInfra-Alpha-Database-DatabaseInstanceObservabilityHighDatabaseConnec..." in EU (Milan)"#
        );
        assert_eq!(subject.len(), 100);
        assert_eq!(
            notification_subject("s-m1-drift", AlarmState::InsufficientData, "us-east-1"),
            r#"INSUFFICIENT_DATA: "s-m1-drift" in US East (N. Virginia)"#
        );
    }

    #[test]
    fn scaled_periods_last_whole_seconds() {
        let alarm = definition(ComparisonOperator::GreaterThanThreshold, 1.0);
        assert_eq!(real_period_seconds(&alarm, &Clock::new(60.0).unwrap()), 1);
        assert_eq!(real_period_seconds(&alarm, &Clock::new(1000.0).unwrap()), 1);
        assert_eq!(
            real_period_seconds(&AlarmDefinition { period_seconds: 300, ..alarm.clone() }, &Clock::new(60.0).unwrap()),
            5
        );
        assert_eq!(real_period_seconds(&alarm, &Clock::default()), 60);
    }
}
