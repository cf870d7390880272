//! The plugin's settings: the `config` map of its `Plugin` spec (and of the
//! spec that uses it, e.g. a model's `monitoring.drift.config`), passed in
//! typed.

use std::fmt;

/// One setting. YAML scalars keep their type; lists and maps arrive as JSON
/// text ([`ConfigValue::Json`]).
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    /// `null` or `~`.
    Null,
    /// `true` / `false`.
    Boolean(bool),
    /// A whole number.
    Integer(i64),
    /// A number with a fraction or exponent.
    Number(f64),
    /// A string.
    Text(String),
    /// A list or map, as JSON text.
    Json(String),
}

impl ConfigValue {
    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigValue::Null => "null",
            ConfigValue::Boolean(_) => "a boolean",
            ConfigValue::Integer(_) => "an integer",
            ConfigValue::Number(_) => "a number",
            ConfigValue::Text(_) => "a string",
            ConfigValue::Json(_) => "a list or map",
        }
    }
}

/// A setting that is present but unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's key.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config `{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The plugin's settings, in key order, with typed getters. Every getter
/// takes a default for an absent (or `null`) key and fails with a
/// [`ConfigError`] naming the key when the value has the wrong type or is
/// out of range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    entries: Vec<(String, ConfigValue)>,
}

impl FromIterator<(String, ConfigValue)> for Config {
    fn from_iter<I: IntoIterator<Item = (String, ConfigValue)>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().collect(),
        }
    }
}

impl Config {
    /// A config from key/value pairs (handy in tests).
    pub fn new<K: Into<String>>(entries: impl IntoIterator<Item = (K, ConfigValue)>) -> Self {
        entries.into_iter().map(|(k, v)| (k.into(), v)).collect()
    }

    /// All settings, in key order.
    pub fn entries(&self) -> &[(String, ConfigValue)] {
        &self.entries
    }

    /// The value of `key`, if set and not `null`.
    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, ConfigValue::Null))
    }

    fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &ConfigValue) -> ConfigError {
        self.error(key, format!("expected {expected}, got {}", got.kind()))
    }

    /// Fails on any key not in `known`, suggesting the closest known one:
    /// a misspelt setting must not be silently ignored.
    pub fn check_keys(&self, known: &[&str]) -> Result<(), ConfigError> {
        for (key, _) in &self.entries {
            if !known.contains(&key.as_str()) {
                let hint = known
                    .iter()
                    .map(|k| (edit_distance(k, key), k))
                    .filter(|(d, _)| *d <= 2)
                    .min()
                    .map(|(_, k)| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                let list = if known.is_empty() {
                    "this plugin takes no settings".to_string()
                } else {
                    format!("known settings: {}", known.join(", "))
                };
                return Err(self.error(key, format!("unknown setting ({list}){hint}")));
            }
        }
        Ok(())
    }

    /// A boolean.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(ConfigValue::Boolean(b)) => Ok(*b),
            Some(v) => Err(self.wrong_type(key, "a boolean", v)),
        }
    }

    /// A whole number.
    pub fn i64_or(&self, key: &str, default: i64) -> Result<i64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(ConfigValue::Integer(i)) => Ok(*i),
            Some(ConfigValue::Number(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => Ok(*n as i64),
            Some(v) => Err(self.wrong_type(key, "an integer", v)),
        }
    }

    /// A whole number within `min..=max`.
    pub fn int_in_or(
        &self,
        key: &str,
        min: i64,
        max: i64,
        default: i64,
    ) -> Result<i64, ConfigError> {
        let v = self.i64_or(key, default)?;
        if v < min || v > max {
            return Err(self.error(key, format!("{v} is out of range {min}..={max}")));
        }
        Ok(v)
    }

    /// A number (integers are accepted). NaN and infinities are refused.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        let v = match self.get(key) {
            None => return Ok(default),
            Some(ConfigValue::Number(n)) => *n,
            Some(ConfigValue::Integer(i)) => *i as f64,
            Some(v) => return Err(self.wrong_type(key, "a number", v)),
        };
        if !v.is_finite() {
            return Err(self.error(key, format!("{v} is not a finite number")));
        }
        Ok(v)
    }

    /// A number within `min..=max`.
    pub fn f64_in_or(
        &self,
        key: &str,
        min: f64,
        max: f64,
        default: f64,
    ) -> Result<f64, ConfigError> {
        let v = self.f64_or(key, default)?;
        if v < min || v > max {
            return Err(self.error(key, format!("{v} is out of range {min}..={max}")));
        }
        Ok(v)
    }

    /// A string.
    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> Result<&'a str, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(ConfigValue::Text(s)) => Ok(s),
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    /// A string that must be one of `choices`.
    pub fn choice_or<'a>(
        &'a self,
        key: &str,
        choices: &[&str],
        default: &'a str,
    ) -> Result<&'a str, ConfigError> {
        let v = self.str_or(key, default)?;
        if !choices.contains(&v) {
            return Err(self.error(key, format!("`{v}` is not one of: {}", choices.join(", "))));
        }
        Ok(v)
    }

    /// A list of strings (a YAML list, or a single string for a list of one).
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::Text(s)) => Ok(Some(vec![s.clone()])),
            Some(ConfigValue::Json(json)) => serde_json::from_str::<Vec<String>>(json)
                .map(Some)
                .map_err(|_| self.error(key, "expected a list of strings")),
            Some(v) => Err(self.wrong_type(key, "a list of strings", v)),
        }
    }

    /// A list or map, deserialized from its JSON text into `T`.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::Json(json)) => serde_json::from_str(json)
                .map(Some)
                .map_err(|e| self.error(key, e.to_string())),
            Some(v) => Err(self.wrong_type(key, "a list or map", v)),
        }
    }
}

/// Levenshtein distance, for did-you-mean hints on short keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new([
            ("bins", ConfigValue::Integer(12)),
            ("alpha", ConfigValue::Number(0.01)),
            ("aggregate", ConfigValue::Text("mean".into())),
            ("features", ConfigValue::Json(r#"["a","b"]"#.into())),
            ("nothing", ConfigValue::Null),
        ])
    }

    #[test]
    fn typed_getters_with_defaults() {
        let c = config();
        assert_eq!(c.i64_or("bins", 10).unwrap(), 12);
        assert_eq!(c.i64_or("absent", 10).unwrap(), 10);
        assert_eq!(c.i64_or("nothing", 7).unwrap(), 7);
        assert_eq!(c.f64_or("alpha", 0.05).unwrap(), 0.01);
        assert_eq!(c.f64_or("bins", 0.0).unwrap(), 12.0);
        assert_eq!(
            c.choice_or("aggregate", &["max", "mean"], "max").unwrap(),
            "mean"
        );
        assert_eq!(c.strings("features").unwrap().unwrap(), ["a", "b"]);
        assert!(!c.bool_or("absent", false).unwrap());
    }

    #[test]
    fn errors_name_the_key_and_the_problem() {
        let c = config();
        let e = c.i64_or("aggregate", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config `aggregate`: expected an integer, got a string"
        );
        let e = c.int_in_or("bins", 2, 10, 5).unwrap_err();
        assert_eq!(e.to_string(), "config `bins`: 12 is out of range 2..=10");
        let e = c
            .choice_or("aggregate", &["max", "sum"], "max")
            .unwrap_err();
        assert!(e.to_string().contains("not one of: max, sum"), "{e}");
        let e = c
            .check_keys(&["bin", "alpha", "aggregate", "features", "nothing"])
            .unwrap_err();
        assert!(e.to_string().contains("did you mean `bin`"), "{e}");
        c.check_keys(&["bins", "alpha", "aggregate", "features", "nothing"])
            .unwrap();
    }
}
