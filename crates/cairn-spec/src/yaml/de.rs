//! `serde::Deserializer` for [`Node`]: every error is tagged with the span of
//! the node (or mapping key) it is about.

use super::{Node, Span, Value, is_null};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use std::fmt;

/// What kind of mistake a [`DeError`] is, for hints.
#[derive(Debug, Clone, PartialEq)]
pub enum DeErrorKind {
    /// A field the type does not have.
    UnknownField {
        /// The field as written.
        field: String,
        /// The fields the type accepts.
        expected: Vec<&'static str>,
    },
    /// An enum value that is not one of the allowed ones.
    UnknownVariant {
        /// The value as written.
        variant: String,
        /// The allowed values.
        expected: Vec<&'static str>,
    },
    /// A required field is missing.
    MissingField(&'static str),
    /// A value of the wrong type.
    InvalidType,
    /// A value that parsed but is not acceptable (bad duration, name, ...).
    InvalidValue,
    /// A field given twice in one mapping.
    DuplicateField(&'static str),
}

/// A deserialization error with the span it is about.
#[derive(Debug, Clone)]
pub struct DeError {
    /// What went wrong.
    pub message: String,
    /// The kind of mistake.
    pub kind: DeErrorKind,
    /// The offending node; `None` only until the error leaves the node that
    /// raised it.
    pub span: Option<Span>,
}

impl DeError {
    fn at(mut self, span: Span) -> Self {
        self.span.get_or_insert(span);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            kind: DeErrorKind::InvalidValue,
            span: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError {
            message: format!("invalid type: {unexp}, expected {exp}"),
            kind: DeErrorKind::InvalidType,
            span: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            message: format!("unknown field `{field}`"),
            kind: DeErrorKind::UnknownField {
                field: field.to_string(),
                expected: expected.to_vec(),
            },
            span: None,
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            message: format!("unknown value `{variant}`"),
            kind: DeErrorKind::UnknownVariant {
                variant: variant.to_string(),
                expected: expected.to_vec(),
            },
            span: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            message: format!("missing field `{field}`"),
            kind: DeErrorKind::MissingField(field),
            span: None,
        }
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError {
            message: format!("field `{field}` is given twice"),
            kind: DeErrorKind::DuplicateField(field),
            span: None,
        }
    }
}

/// Deserializes a `T` from a node; errors carry the offending span.
pub fn from_node<'a, T: serde::Deserialize<'a>>(node: &'a Node) -> Result<T, DeError> {
    T::deserialize(node)
}

/// How a plain scalar resolves under the YAML 1.2 core schema.
enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
}

fn resolve(text: &str, plain: bool) -> Resolved<'_> {
    if !plain {
        return Resolved::Str(text);
    }
    if is_null(text) {
        return Resolved::Null;
    }
    match text {
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.' {
        if let Ok(u) = text.parse::<u64>() {
            return Resolved::UInt(u);
        }
        if let Ok(i) = text.parse::<i64>() {
            return Resolved::Int(i);
        }
        if let Some(hex) = text.strip_prefix("0x")
            && let Ok(u) = u64::from_str_radix(hex, 16)
        {
            return Resolved::UInt(u);
        }
        if let Some(oct) = text.strip_prefix("0o")
            && let Ok(u) = u64::from_str_radix(oct, 8)
        {
            return Resolved::UInt(u);
        }
        if text.bytes().any(|b| b.is_ascii_digit())
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
            && let Ok(f) = text.parse::<f64>()
        {
            return Resolved::Float(f);
        }
    }
    Resolved::Str(text)
}

fn unexpected<'a>(node: &'a Node) -> de::Unexpected<'a> {
    match &node.value {
        Value::Seq(_) => de::Unexpected::Seq,
        Value::Map(_) => de::Unexpected::Map,
        Value::Scalar(s) => match resolve(&s.text, s.plain) {
            Resolved::Null => de::Unexpected::Unit,
            Resolved::Bool(b) => de::Unexpected::Bool(b),
            Resolved::Int(i) => de::Unexpected::Signed(i),
            Resolved::UInt(u) => de::Unexpected::Unsigned(u),
            Resolved::Float(f) => de::Unexpected::Float(f),
            Resolved::Str(s) => de::Unexpected::Str(s),
        },
    }
}

fn type_error(node: &Node, expected: &dyn de::Expected) -> DeError {
    <DeError as de::Error>::invalid_type(unexpected(node), expected).at(node.span)
}

macro_rules! deserialize_number {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let span = self.span;
            let result = match &self.value {
                Value::Scalar(s) if s.plain => match resolve(&s.text, true) {
                    Resolved::Int(i) => visitor.visit_i64(i),
                    Resolved::UInt(u) => visitor.visit_u64(u),
                    Resolved::Float(f) => visitor.visit_f64(f),
                    _ => Err(type_error(self, &visitor)),
                },
                _ => Err(type_error(self, &visitor)),
            };
            result.map_err(|e| e.at(span))
        }
    )*};
}

impl<'de> Deserializer<'de> for &'de Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let span = self.span;
        let result = match &self.value {
            Value::Scalar(s) => match resolve(&s.text, s.plain) {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => visitor.visit_i64(i),
                Resolved::UInt(u) => visitor.visit_u64(u),
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str(s) => visitor.visit_borrowed_str(s),
            },
            Value::Seq(items) => visitor.visit_seq(SeqAccessor {
                items: items.iter(),
            }),
            Value::Map(entries) => visitor.visit_map(MapAccessor {
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|e| e.at(span))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.value {
            Value::Scalar(s) if s.plain => match resolve(&s.text, true) {
                Resolved::Bool(b) => visitor.visit_bool(b).map_err(|e: DeError| e.at(self.span)),
                _ => Err(type_error(self, &visitor)),
            },
            _ => Err(type_error(self, &visitor)),
        }
    }

    deserialize_number! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_f32 deserialize_f64
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.value {
            // Typed string fields accept any scalar as text: `version: 1.10`
            // stays "1.10", unlike in a schema-less reader.
            Value::Scalar(s) if !(s.plain && is_null(&s.text)) => visitor
                .visit_borrowed_str(&s.text)
                .map_err(|e: DeError| e.at(self.span)),
            _ => Err(type_error(self, &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_null() {
            visitor.visit_none().map_err(|e: DeError| e.at(self.span))
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_null() {
            visitor.visit_unit().map_err(|e: DeError| e.at(self.span))
        } else {
            Err(type_error(self, &visitor))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor
            .visit_newtype_struct(self)
            .map_err(|e: DeError| e.at(self.span))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.value {
            Value::Seq(items) => visitor
                .visit_seq(SeqAccessor {
                    items: items.iter(),
                })
                .map_err(|e: DeError| e.at(self.span)),
            // An empty value reads as an empty list: `dependsOn:` with nothing.
            _ if self.is_null() => visitor
                .visit_seq(SeqAccessor { items: [].iter() })
                .map_err(|e: DeError| e.at(self.span)),
            _ => Err(type_error(self, &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.value {
            Value::Map(entries) => visitor
                .visit_map(MapAccessor {
                    entries: entries.iter(),
                    value: None,
                })
                .map_err(|e: DeError| e.at(self.span)),
            _ if self.is_null() => visitor
                .visit_map(MapAccessor {
                    entries: [].iter(),
                    value: None,
                })
                .map_err(|e: DeError| e.at(self.span)),
            _ => Err(type_error(self, &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.value {
            Value::Scalar(_) if !self.is_null() => visitor.visit_enum(EnumAccessor {
                tag: self,
                content: None,
            }),
            Value::Map(entries) if entries.len() == 1 => visitor.visit_enum(EnumAccessor {
                tag: &entries[0].0,
                content: Some(&entries[0].1),
            }),
            _ => Err(type_error(self, &visitor)),
        };
        result.map_err(|e: DeError| e.at(self.span))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqAccessor<'de> {
    items: std::slice::Iter<'de, Node>,
}

impl<'de> SeqAccess<'de> for SeqAccessor<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(node)
                .map(Some)
                .map_err(|e| e.at(node.span)),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccessor<'de> {
    entries: std::slice::Iter<'de, (Node, Node)>,
    value: Option<&'de Node>,
}

impl<'de> MapAccess<'de> for MapAccessor<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(key).map(Some).map_err(|e| e.at(key.span))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let value = self.value.take().expect("value after key");
        seed.deserialize(value).map_err(|e| e.at(value.span))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumAccessor<'de> {
    tag: &'de Node,
    content: Option<&'de Node>,
}

impl<'de> EnumAccess<'de> for EnumAccessor<'de> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let tag = self.tag;
        let variant = match tag.as_str() {
            Some(name) => seed.deserialize(name.into_deserializer()),
            None => Err(type_error(tag, &"an enum value")),
        }
        .map_err(|e: DeError| e.at(tag.span))?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for EnumAccessor<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.content {
            None => Ok(()),
            Some(node) if node.is_null() => Ok(()),
            Some(node) => Err(type_error(node, &"no value")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        match self.content {
            Some(node) => seed.deserialize(node),
            None => Err(type_error(self.tag, &"a value for this variant")),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        match self.content {
            Some(node) => node.deserialize_seq(visitor),
            None => Err(type_error(self.tag, &visitor)),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.content {
            Some(node) => node.deserialize_map(visitor),
            None => Err(type_error(self.tag, &visitor)),
        }
    }
}

impl<'de> IntoDeserializer<'de, DeError> for &'de Node {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_documents;
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Spec {
        name: String,
        replicas: Option<u32>,
        #[serde(default)]
        depends_on: Vec<String>,
        mode: Option<Mode>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    enum Mode {
        Sync,
        Async,
    }

    fn err_at(src: &str) -> (DeError, String) {
        let docs = parse_documents(src).unwrap();
        let e = from_node::<Spec>(&docs[0]).unwrap_err();
        let text = src[e.span.unwrap().range()].to_string();
        (e, text)
    }

    #[test]
    fn reads_typed_values() {
        let docs =
            parse_documents("name: 1.10\nreplicas: 3\ndependsOn: [a, b]\nmode: async\n").unwrap();
        let s: Spec = from_node(&docs[0]).unwrap();
        assert_eq!(s.name, "1.10");
        assert_eq!(s.replicas, Some(3));
        assert_eq!(s.depends_on, ["a", "b"]);
        assert_eq!(s.mode, Some(Mode::Async));
    }

    #[test]
    fn unknown_field_points_at_key() {
        let (e, text) = err_at("name: x\nreplica: 3\n");
        assert_eq!(text, "replica");
        assert!(matches!(e.kind, DeErrorKind::UnknownField { .. }));
    }

    #[test]
    fn wrong_type_points_at_value() {
        let (e, text) = err_at("name: x\nreplicas: three\n");
        assert_eq!(text, "three");
        assert_eq!(e.kind, DeErrorKind::InvalidType);
        let (_, text) = err_at("name: x\ndependsOn: [a, [b]]\n");
        assert_eq!(text, "[b]");
    }

    #[test]
    fn unknown_variant_points_at_value() {
        let (e, text) = err_at("name: x\nmode: asinc\n");
        assert_eq!(text, "asinc");
        assert!(matches!(e.kind, DeErrorKind::UnknownVariant { .. }));
    }

    #[test]
    fn missing_field_points_at_mapping() {
        let (e, _) = err_at("replicas: 2\n");
        assert_eq!(e.kind, DeErrorKind::MissingField("name"));
        assert_eq!(e.span.unwrap().start, 0);
    }
}
