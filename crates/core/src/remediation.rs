//! What to do when CloudWatch says an alarm changed state: the notification it publishes
//! to SNS (its standard JSON), and the decision — ignore it, tell the operators, retrain,
//! or wait for new data. Pure, so every case is a unit test; `remediate` carries it out
//! under a per-model episode lock so duplicates and flapping alarms retrain once.

use serde::Deserialize;
use time::OffsetDateTime;

use crate::monitoring::{MODEL_DIMENSION, Response, response_to};

/// The parts of CloudWatch's alarm notification that matter here.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmNotification {
    pub alarm_name: String,
    #[serde(default)]
    pub alarm_arn: String,
    pub new_state_value: String,
    #[serde(default)]
    pub old_state_value: String,
    #[serde(default)]
    pub new_state_reason: String,
    /// When the state changed: the same in every copy of one notification.
    pub state_change_time: String,
    pub trigger: Trigger,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Trigger {
    #[serde(default)]
    pub metric_name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub dimensions: Vec<TriggerDimension>,
}

/// CloudWatch writes these two in lower case.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TriggerDimension {
    pub name: String,
    pub value: String,
}

impl AlarmNotification {
    /// The model the alarm watches, from its `Model` dimension.
    pub fn model(&self) -> Option<&str> {
        self.trigger.dimensions.iter().find(|d| d.name == MODEL_DIMENSION).map(|d| d.value.as_str())
    }

    /// Identifies this state change: every duplicate delivery of it has the same key.
    pub fn occurrence(&self) -> String {
        format!("{}@{}", self.alarm_name, self.state_change_time)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not a transition into ALARM, or not about a model.
    Ignore(String),
    /// Tell the operators; retraining would not help.
    Notify,
    Retrain,
    /// Retraining would learn nothing new: no curated data arrived since production was
    /// trained.
    WaitForData(String),
}

/// What the model's production version knows: when it was trained, and the newest
/// curated data of its dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataState {
    pub trained_at: Option<OffsetDateTime>,
    pub latest_data: Option<OffsetDateTime>,
}

/// Acts only on a transition into ALARM of a model alarm; retrains for drift and quality
/// alarms, and only when data newer than production's training arrived.
pub fn decide(notification: &AlarmNotification, data: Option<DataState>) -> Decision {
    if notification.new_state_value != "ALARM" {
        return Decision::Ignore(format!("the alarm went to {}, not ALARM", notification.new_state_value));
    }
    if notification.old_state_value == "ALARM" {
        return Decision::Ignore("the alarm was already in ALARM".into());
    }
    if notification.model().is_none() {
        return Decision::Ignore(format!("alarm {} watches no model", notification.alarm_name));
    }
    if response_to(&notification.trigger.metric_name) == Response::Notify {
        return Decision::Notify;
    }
    let Some(data) = data else {
        return Decision::Ignore("the model has no production version any more".into());
    };
    match (data.trained_at, data.latest_data) {
        (_, None) => Decision::WaitForData("its dataset has no processed data".into()),
        (Some(trained), Some(latest)) if latest <= trained => Decision::WaitForData(format!(
            "no curated data arrived since the production version was trained ({})",
            trained.date()
        )),
        _ => Decision::Retrain,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::monitoring::{DRIFT_DETECTED, SERVER_ERRORS};

    /// A notification as CloudWatch publishes it (from the AWS documentation's example,
    /// with a model dimension).
    fn notification(new: &str, old: &str, metric: &str) -> AlarmNotification {
        let text = format!(
            r#"{{"AlarmName":"prod-iris-drift","AlarmDescription":"Sluice","AWSAccountId":"123456789012",
            "AlarmConfigurationUpdatedTimestamp":"2026-11-22T10:00:00.000+0000","NewStateValue":"{new}",
            "NewStateReason":"Threshold Crossed: 1 out of the last 1 datapoints [1.0 (22/11/26 10:15:00)] was greater than or equal to the threshold (1.0).",
            "StateChangeTime":"2026-11-22T10:16:03.207+0000","Region":"US East (N. Virginia)",
            "AlarmArn":"arn:aws:cloudwatch:us-east-1:123456789012:alarm:prod-iris-drift","OldStateValue":"{old}",
            "OKActions":[],"AlarmActions":["arn:aws:sns:us-east-1:123456789012:alarms"],"InsufficientDataActions":[],
            "Trigger":{{"MetricName":"{metric}","Namespace":"Sluice/prod","StatisticType":"Statistic","Statistic":"MAXIMUM",
            "Unit":null,"Dimensions":[{{"value":"iris","name":"Model"}}],"Period":900,"EvaluationPeriods":1,
            "DatapointsToAlarm":1,"ComparisonOperator":"GreaterThanOrEqualToThreshold","Threshold":1.0,
            "TreatMissingData":"ignore","EvaluateLowSampleCountPercentile":""}}}}"#
        );
        serde_json::from_str(&text).unwrap()
    }

    const TRAINED: OffsetDateTime = datetime!(2026-11-20 08:00 UTC);

    fn data(latest: OffsetDateTime) -> Option<DataState> {
        Some(DataState { trained_at: Some(TRAINED), latest_data: Some(latest) })
    }

    #[test]
    fn the_standard_notification_names_the_model() {
        let n = notification("ALARM", "OK", DRIFT_DETECTED);
        assert_eq!(n.model(), Some("iris"));
        assert_eq!(n.occurrence(), "prod-iris-drift@2026-11-22T10:16:03.207+0000");
    }

    #[test]
    fn drift_into_alarm_with_new_data_retrains() {
        let decision = decide(&notification("ALARM", "OK", DRIFT_DETECTED), data(datetime!(2026-11-21 09:00 UTC)));
        assert_eq!(decision, Decision::Retrain);
        let from_insufficient =
            decide(&notification("ALARM", "INSUFFICIENT_DATA", DRIFT_DETECTED), data(datetime!(2026-11-21 9:00 UTC)));
        assert_eq!(from_insufficient, Decision::Retrain);
    }

    #[test]
    fn only_transitions_into_alarm_act() {
        for (new, old) in [("OK", "ALARM"), ("INSUFFICIENT_DATA", "OK"), ("ALARM", "ALARM")] {
            let decision = decide(&notification(new, old, DRIFT_DETECTED), data(datetime!(2026-11-21 9:00 UTC)));
            assert!(matches!(decision, Decision::Ignore(_)), "{new} from {old}: {decision:?}");
        }
    }

    #[test]
    fn no_new_data_waits() {
        let decision = decide(&notification("ALARM", "OK", DRIFT_DETECTED), data(TRAINED));
        assert!(
            matches!(decision, Decision::WaitForData(ref why) if why.contains("no curated data arrived")),
            "{decision:?}"
        );
        let empty = Some(DataState { trained_at: Some(TRAINED), latest_data: None });
        assert!(matches!(decide(&notification("ALARM", "OK", DRIFT_DETECTED), empty), Decision::WaitForData(_)));
    }

    #[test]
    fn error_alarms_notify_and_foreign_alarms_are_ignored() {
        assert_eq!(decide(&notification("ALARM", "OK", SERVER_ERRORS), None), Decision::Notify);
        let mut foreign = notification("ALARM", "OK", "CPUUtilization");
        foreign.trigger.dimensions.clear();
        assert!(matches!(decide(&foreign, None), Decision::Ignore(_)));
        assert!(matches!(decide(&notification("ALARM", "OK", DRIFT_DETECTED), None), Decision::Ignore(_)));
    }
}
