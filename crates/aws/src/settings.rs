//! Function configuration comes from environment variables that `template.yaml` sets. The
//! local cloud runs several functions in one process, so settings are read through a lookup
//! rather than from the process environment directly.

use std::collections::HashMap;
use std::str::FromStr;

pub trait Vars {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment, as a Lambda container sees it.
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Vars for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} = {value:?} is not a valid value")]
    Invalid { name: &'static str, value: String },
}

pub fn required(vars: &dyn Vars, name: &'static str) -> Result<String, SettingsError> {
    vars.var(name).filter(|v| !v.is_empty()).ok_or(SettingsError::Missing(name))
}

pub fn parsed_or<T: FromStr>(vars: &dyn Vars, name: &'static str, default: T) -> Result<T, SettingsError> {
    match vars.var(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|_| SettingsError::Invalid { name, value }),
    }
}

/// The function's memory in bytes: Lambda sets `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (MB) from
/// the template's `MemorySize`; elsewhere a gigabyte is assumed.
pub fn function_memory_bytes(vars: &dyn Vars) -> Result<u64, SettingsError> {
    Ok(parsed_or(vars, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1024_u64)? * 1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn required_rejects_missing_and_empty() {
        assert_eq!(required(&vars(&[("A", "x")]), "A"), Ok("x".to_owned()));
        assert_eq!(required(&vars(&[("A", "")]), "A"), Err(SettingsError::Missing("A")));
        assert_eq!(required(&vars(&[]), "A"), Err(SettingsError::Missing("A")));
    }

    #[test]
    fn parsed_or_defaults_and_validates() {
        assert_eq!(parsed_or(&vars(&[]), "N", 7_u64), Ok(7));
        assert_eq!(parsed_or(&vars(&[("N", "9")]), "N", 7_u64), Ok(9));
        assert_eq!(
            parsed_or(&vars(&[("N", "nine")]), "N", 7_u64),
            Err(SettingsError::Invalid { name: "N", value: "nine".into() })
        );
    }
}
