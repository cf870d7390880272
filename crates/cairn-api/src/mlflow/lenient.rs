//! The readers of MLflow's lenient encodings.

use super::*;
use serde::de::{self, Visitor};
use std::fmt;

/// An `int64`: a JSON number or a string of one.
struct Int64;

impl Visitor<'_> for Int64 {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a 64-bit integer, as a number or a string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is beyond a 64-bit integer")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < 9.2e18 {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("{v} is not an integer")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("`{v}` is not an integer")))
    }
}

pub(super) fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(Int64)
}

/// An optional `int64`; `null` is none.
pub(super) fn opt_int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            Int64.expecting(f)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            int64(d).map(Some)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Int64.visit_i64(v).map(Some)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Int64.visit_u64(v).map(Some)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Int64.visit_f64(v).map(Some)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.is_empty() {
                return Ok(None);
            }
            Int64.visit_str(v).map(Some)
        }
    }
    d.deserialize_any(Opt)
}

/// A metric's value: a number or `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub(super) fn metric_value<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct Value;
    impl Visitor<'_> for Value {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\" in `value`")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            match v {
                "NaN" | "nan" => Ok(f64::NAN),
                "Infinity" | "inf" => Ok(f64::INFINITY),
                "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                _ => v.trim().parse::<f64>().map_err(|_| {
                    E::custom(format!(
                        "metric `value` must be a number, \"NaN\", \"Infinity\" or \"-Infinity\", not `{v}`"
                    ))
                }),
            }
        }
    }
    d.deserialize_any(Value)
}

/// A metric's value as proto3 JSON writes it: the non-finite ones as strings.
pub(super) fn write_metric_value<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if *v == f64::INFINITY {
        s.serialize_str("Infinity")
    } else if *v == f64::NEG_INFINITY {
        s.serialize_str("-Infinity")
    } else {
        s.serialize_f64(*v)
    }
}

/// An id: a string, or a number (read as its decimal digits).
struct Id;

impl Visitor<'_> for Id {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an id, as a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}

pub(super) fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(Id)
}

/// A list of ids (strings or numbers); `null` is none.
pub(super) fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct One(#[serde(deserialize_with = "id")] String);
    let list: Option<Vec<One>> = Option::deserialize(d)?;
    Ok(list.unwrap_or_default().into_iter().map(|o| o.0).collect())
}

/// An enum of a proto, by name or by number (`names[number]`).
fn enum_name<'de, D: Deserializer<'de>>(
    d: D,
    names: &'static [&'static str],
) -> Result<Option<String>, D::Error> {
    struct Name(&'static [&'static str]);
    impl Visitor<'_> for Name {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "one of {}", self.0[1..].join(", "))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok((!v.is_empty()).then(|| v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            usize::try_from(v)
                .ok()
                .and_then(|i| self.0.get(i))
                .filter(|n| !n.is_empty())
                .map(|n| Some(n.to_string()))
                .ok_or_else(|| E::custom(format!("{v} is not {}", self.0[1..].join(", "))))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.visit_i64(i64::try_from(v).unwrap_or(-1))
        }
    }
    d.deserialize_any(Name(names))
}

pub(super) fn view_type<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    enum_name(d, &["", "ACTIVE_ONLY", "DELETED_ONLY", "ALL"])
}

pub(super) fn run_status<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    enum_name(
        d,
        &["", "RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"],
    )
}

pub(super) fn model_status<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(
        d,
        &[
            "LOGGED_MODEL_STATUS_UNSPECIFIED",
            "LOGGED_MODEL_PENDING",
            "LOGGED_MODEL_READY",
            "LOGGED_MODEL_UPLOAD_FAILED",
        ],
    )
    .map(Option::unwrap_or_default)
}
