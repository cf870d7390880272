//! Typed scalar values of the spec API, parsed when a spec is loaded: names,
//! durations, CPU and memory quantities, cron schedules and repository paths.
//!
//! Each type deserializes from its YAML text, serializes back to a canonical
//! text (so `90s` and `1m 30s` compare equal in a plan), and describes itself
//! to JSON Schema as a string with a pattern.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// Implements Deserialize (through `FromStr`), Serialize (through `Display`)
/// and a string JSON Schema for a value type.
macro_rules! string_value {
    ($ty:ident, $expecting:literal, $schema:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, n: u64) -> Result<$ty, E> {
                        self.visit_str(&n.to_string())
                    }
                    fn visit_f64<E: de::Error>(self, n: f64) -> Result<$ty, E> {
                        self.visit_str(&n.to_string())
                    }
                }
                d.deserialize_str(V)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

/// A DNS-1123 label: lowercase letters, digits and `-`, starting and ending
/// with a letter or digit, at most 63 characters. Used for every name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("a name must not be empty".into());
        }
        if s.len() > 63 {
            return Err(format!(
                "name `{s}` is {} characters long; the limit is 63",
                s.len()
            ));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            let hint = if s.chars().any(|c| c.is_ascii_uppercase() || c == '_') {
                format!("; try `{}`", s.to_ascii_lowercase().replace('_', "-"))
            } else {
                String::new()
            };
            return Err(format!(
                "invalid name `{s}`: `{bad}` is not allowed (names use lowercase letters, digits and `-`){hint}"
            ));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(format!(
                "invalid name `{s}`: it must start and end with a letter or digit"
            ));
        }
        Ok(Name(s.to_string()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

string_value!(
    Name,
    "a name (lowercase letters, digits and `-`)",
    json_schema!({
        "type": "string",
        "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        "maxLength": 63,
        "description": "A DNS-1123 label: lowercase letters, digits and '-'."
    })
);

/// A span of time written like `90s`, `5m`, `1h30m` or `2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

impl Duration {
    /// The duration as a `std::time::Duration`.
    pub fn get(self) -> std::time::Duration {
        self.0
    }

    /// A duration of `secs` seconds.
    pub fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
            return Err(format!(
                "`{s}` has no unit; write e.g. `{s}s`, `{s}m` or `{s}h`"
            ));
        }
        humantime::parse_duration(s)
            .map(Duration)
            .map_err(|e| format!("invalid duration `{s}`: {e} (examples: `90s`, `5m`, `1h30m`)"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = humantime::format_duration(self.0).to_string();
        f.write_str(&text.replace(' ', ""))
    }
}

string_value!(
    Duration,
    "a duration such as `90s`, `5m` or `1h30m`",
    json_schema!({
        "type": "string",
        "description": "A duration such as '90s', '5m' or '1h30m' (units: ns us ms s m h d w)."
    })
);

/// CPU in millicores, written like `500m`, `2` or `0.5`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cpu(u64);

impl Cpu {
    /// A CPU amount of `m` millicores.
    pub fn from_millis(m: u64) -> Self {
        Cpu(m)
    }

    /// The amount in millicores.
    pub fn millis(self) -> u64 {
        self.0
    }
}

impl FromStr for Cpu {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid CPU quantity `{s}` (examples: `500m`, `2`, `0.5`)");
        if let Some(m) = s.strip_suffix('m') {
            return m.parse::<u64>().map(Cpu).map_err(|_| bad());
        }
        let cores: f64 = s.parse().map_err(|_| bad())?;
        if !cores.is_finite() || cores < 0.0 {
            return Err(bad());
        }
        let millis = cores * 1000.0;
        if millis.fract() > 1e-9 {
            return Err(format!("CPU quantity `{s}` is finer than a millicore"));
        }
        Ok(Cpu(millis.round() as u64))
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

string_value!(
    Cpu,
    "a CPU quantity such as `500m` or `2`",
    json_schema!({
        "type": ["string", "number"],
        "pattern": "^([0-9]+m|[0-9]+(\\.[0-9]{1,3})?)$",
        "description": "CPU cores ('2', '0.5') or millicores ('500m')."
    })
);

/// Memory in bytes, written like `512Mi`, `4Gi`, `1G` or `1000000`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Memory(u64);

impl Memory {
    /// A memory amount of `b` bytes.
    pub fn from_bytes(b: u64) -> Self {
        Memory(b)
    }

    /// The amount in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

const MEMORY_SUFFIXES: [(&str, u64); 12] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

impl FromStr for Memory {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid memory quantity `{s}` (examples: `512Mi`, `4Gi`, `1G`; suffixes Ki Mi Gi Ti, k M G T)"
            )
        };
        let (number, factor) = MEMORY_SUFFIXES
            .iter()
            .find_map(|(suffix, factor)| s.strip_suffix(suffix).map(|n| (n, *factor)))
            .unwrap_or((s, 1));
        let value: f64 = number.parse().map_err(|_| bad())?;
        if !value.is_finite() || value < 0.0 {
            return Err(bad());
        }
        let bytes = value * factor as f64;
        if bytes > u64::MAX as f64 {
            return Err(format!("memory quantity `{s}` is too large"));
        }
        Ok(Memory(bytes.round() as u64))
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (suffix, factor) in MEMORY_SUFFIXES.iter().take(6).rev() {
            if self.0 >= *factor && self.0.is_multiple_of(*factor) {
                return write!(f, "{}{suffix}", self.0 / factor);
            }
        }
        write!(f, "{}", self.0)
    }
}

string_value!(
    Memory,
    "a memory quantity such as `512Mi` or `4Gi`",
    json_schema!({
        "type": ["string", "integer"],
        "pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$",
        "description": "Bytes, with an optional suffix: '512Mi', '4Gi', '1G'."
    })
);

/// A cron expression: five fields (minute hour day month weekday), or six
/// with leading seconds; `@daily` style aliases are accepted.
#[derive(Clone, Debug)]
pub struct CronExpr {
    text: String,
    cron: croner::Cron,
}

impl CronExpr {
    /// The parsed schedule.
    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl FromStr for CronExpr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let fields = s.split_whitespace().count();
        if !s.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "invalid cron expression `{s}`: it has {fields} fields; write 5 (minute hour day month weekday) or 6 (with leading seconds)"
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(s)
            .map_err(|e| format!("invalid cron expression `{s}`: {e}"))?;
        Ok(CronExpr {
            text: s.split_whitespace().collect::<Vec<_>>().join(" "),
            cron,
        })
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

string_value!(
    CronExpr,
    "a cron expression such as `0 3 * * *`",
    json_schema!({
        "type": "string",
        "description": "A cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with leading seconds, or an alias such as '@daily'."
    })
);

/// An IANA time zone such as `Europe/Paris` or `UTC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    /// The zone.
    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone(chrono_tz::UTC)
    }
}

impl FromStr for TimeZone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<chrono_tz::Tz>().map(TimeZone).map_err(|_| {
            let suggestion = chrono_tz::TZ_VARIANTS
                .iter()
                .map(|tz| tz.name())
                .min_by_key(|name| strsim::levenshtein(name, s))
                .filter(|name| strsim::levenshtein(name, s) <= 3);
            match suggestion {
                Some(name) => format!("unknown time zone `{s}`; did you mean `{name}`?"),
                None => format!(
                    "unknown time zone `{s}` (use an IANA name such as `Europe/Paris` or `UTC`)"
                ),
            }
        })
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

string_value!(
    TimeZone,
    "an IANA time zone such as `Europe/Paris`",
    json_schema!({
        "type": "string",
        "description": "An IANA time zone name such as 'Europe/Paris' or 'UTC'."
    })
);

/// A relative path inside the repository: no leading `/`, no `..`, forward
/// slashes. Whether it exists (and where symlinks lead) is checked against
/// the commit when the repository is validated.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoPath(String);

impl RepoPath {
    /// The normalized path (`a/b/c`; `.` for the repository root).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RepoPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("a path must not be empty".into());
        }
        if s.starts_with('/') || s.starts_with('~') || (s.len() > 1 && s.as_bytes()[1] == b':') {
            return Err(format!(
                "path `{s}` is absolute; paths are relative to the repository root"
            ));
        }
        if s.contains('\\') {
            return Err(format!("path `{s}` uses `\\`; write paths with `/`"));
        }
        let mut parts = Vec::new();
        for part in s.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(format!(
                        "path `{s}` uses `..`; paths must stay inside the repository"
                    ));
                }
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return Ok(RepoPath(".".into()));
        }
        Ok(RepoPath(parts.join("/")))
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_value!(
    RepoPath,
    "a path relative to the repository root",
    json_schema!({
        "type": "string",
        "pattern": "^(?!/)(?!.*(^|/)\\.\\.(/|$)).+$",
        "description": "A path relative to the repository root; no '..', not absolute."
    })
);

/// A SHA-256 digest written as 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sha256(String);

impl Sha256 {
    /// The digest as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Sha256 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{s}` is not a SHA-256 digest (64 hex digits)"));
        }
        Ok(Sha256(hex.to_ascii_lowercase()))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_value!(
    Sha256,
    "a SHA-256 digest (64 hex digits)",
    json_schema!({
        "type": "string",
        "pattern": "^(sha256:)?[0-9a-fA-F]{64}$",
        "description": "A SHA-256 digest as 64 hex digits."
    })
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!("churn-model-2".parse::<Name>().is_ok());
        let e = "Churn_Model".parse::<Name>().unwrap_err();
        assert!(e.contains("try `churn-model`"), "{e}");
        assert!("-x".parse::<Name>().is_err());
        assert!("a".repeat(64).parse::<Name>().is_err());
    }

    #[test]
    fn durations_are_canonical() {
        let a: Duration = "90s".parse().unwrap();
        let b: Duration = "1m 30s".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "1m30s");
        assert!("10".parse::<Duration>().unwrap_err().contains("no unit"));
        assert!("10 parsecs".parse::<Duration>().is_err());
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!("500m".parse::<Cpu>().unwrap().millis(), 500);
        assert_eq!("2".parse::<Cpu>().unwrap().millis(), 2000);
        assert_eq!("0.25".parse::<Cpu>().unwrap().to_string(), "250m");
        assert!("two".parse::<Cpu>().is_err());
        assert!("0.0001".parse::<Cpu>().is_err());
    }

    #[test]
    fn memory_quantities() {
        assert_eq!("4Gi".parse::<Memory>().unwrap().bytes(), 4 << 30);
        assert_eq!("1G".parse::<Memory>().unwrap().bytes(), 1_000_000_000);
        assert_eq!("1536Mi".parse::<Memory>().unwrap().to_string(), "1536Mi");
        assert_eq!("2048Mi".parse::<Memory>().unwrap().to_string(), "2Gi");
        assert!("4GB".parse::<Memory>().is_err());
    }

    #[test]
    fn cron_and_zones() {
        assert!("0 3 * * *".parse::<CronExpr>().is_ok());
        assert!("*/5 * * * * *".parse::<CronExpr>().is_ok());
        assert!("@daily".parse::<CronExpr>().is_ok());
        assert!(
            "0 3 * *"
                .parse::<CronExpr>()
                .unwrap_err()
                .contains("4 fields")
        );
        assert!("0 25 * * *".parse::<CronExpr>().is_err());
        assert!("Europe/Paris".parse::<TimeZone>().is_ok());
        let e = "Europe/Pari".parse::<TimeZone>().unwrap_err();
        assert!(e.contains("Europe/Paris"), "{e}");
    }

    #[test]
    fn repo_paths_stay_inside() {
        assert_eq!(
            "./jobs//train".parse::<RepoPath>().unwrap().as_str(),
            "jobs/train"
        );
        assert!("/etc/passwd".parse::<RepoPath>().is_err());
        assert!("jobs/../../x".parse::<RepoPath>().is_err());
        assert!("C:\\x".parse::<RepoPath>().is_err());
    }
}
