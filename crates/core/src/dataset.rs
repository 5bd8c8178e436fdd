use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest dataset name; it becomes an S3 key prefix and a DynamoDB key, so keep it short.
pub const MAX_DATASET_NAME_LEN: usize = 63;

/// A validated dataset name: `[a-z0-9][a-z0-9_-]{0,62}`.
///
/// The name is used verbatim as the first segment of S3 keys, so anything that could
/// climb out of the prefix (`..`, `/`, percent-encoding) must be impossible by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {reason}; expected {pattern}")]
pub struct InvalidName {
    /// What was being named: `dataset` or `model`.
    pub kind: &'static str,
    pub name: String,
    pub reason: &'static str,
    /// The names of this kind that are valid.
    pub pattern: &'static str,
}

/// A validated model name: `[a-z0-9][a-z0-9-]{0,62}`, the dataset alphabet without `_`,
/// which SageMaker model package group names (`<stack>-<model>`) do not take.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelName(String);

impl ModelName {
    pub fn parse(name: &str) -> Result<Self, InvalidName> {
        validate("model", name, false).map(|()| Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ModelName {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ModelName> for String {
    fn from(value: ModelName) -> Self {
        value.0
    }
}

fn validate(kind: &'static str, name: &str, underscore: bool) -> Result<(), InvalidName> {
    let pattern = if underscore { "[a-z0-9][a-z0-9_-]{0,62}" } else { "[a-z0-9][a-z0-9-]{0,62}" };
    let invalid = |reason| InvalidName { kind, name: name.to_owned(), reason, pattern };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(invalid("it is empty")),
        Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
            return Err(invalid("it must start with a lowercase letter or digit"));
        }
        Some(_) => {}
    }
    if name.len() > MAX_DATASET_NAME_LEN {
        return Err(invalid("it is longer than 63 characters"));
    }
    if !underscore && name.contains('_') {
        return Err(invalid("'_' is not allowed (SageMaker model package group names take none): use '-'"));
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
        return Err(invalid("only lowercase letters, digits, '_' and '-' are allowed"));
    }
    Ok(())
}

impl DatasetName {
    pub fn parse(name: &str) -> Result<Self, InvalidName> {
        validate("dataset", name, true).map(|()| Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DatasetName {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DatasetName> for String {
    fn from(value: DatasetName) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_in_the_documented_alphabet() {
        for name in ["a", "0", "iris", "sensor_readings-2026", &"a".repeat(63)] {
            assert_eq!(DatasetName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_names_that_could_escape_or_collide() {
        let too_long = "a".repeat(64);
        for name in ["", "../x", "%2e%2e", "Iris", "_iris", "-iris", "a/b", "a.b", "a b", "é", too_long.as_str()] {
            let err = DatasetName::parse(name).unwrap_err();
            assert_eq!(err.name, name);
            assert!(err.to_string().contains("invalid dataset name"), "{err}");
        }
    }

    #[test]
    fn model_names_are_dataset_names_without_underscores() {
        assert_eq!(ModelName::parse("iris-species-2").unwrap().as_str(), "iris-species-2");
        let err = ModelName::parse("iris_species").unwrap_err();
        assert!(err.to_string().contains("'_' is not allowed"), "{err}");
        assert!(err.to_string().ends_with("expected [a-z0-9][a-z0-9-]{0,62}"), "{err}");
        assert!(DatasetName::parse("iris_species").is_ok());
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<DatasetName>("\"iris\"").is_ok());
        assert!(serde_json::from_str::<DatasetName>("\"../etc\"").is_err());
    }
}
