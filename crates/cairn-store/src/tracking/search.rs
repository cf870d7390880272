//! MLflow's search syntax: a filter (`metrics.acc > 0.9 and params.C =
//! '1.0' and tags.\`my tag\` LIKE 'a%'`) and order-by keys
//! (`metrics.acc DESC`), parsed into clauses and compiled to SQL with bound
//! values. Page tokens are opaque to clients (base64 of an offset).

use super::{Result, TrackingError, ViewType};
use base64::Engine;
use rusqlite::types::Value;

/// What a clause compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    /// `metrics.KEY`: the latest value.
    Metric,
    /// `params.KEY`.
    Param,
    /// `tags.KEY`.
    Tag,
    /// `attributes.KEY` or a bare key: a column.
    Attribute,
    /// `datasets.name`, `datasets.digest`.
    Dataset,
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `=`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `LIKE` (case-sensitive, `%` and `_`).
    Like,
    /// `ILIKE` (case-insensitive).
    ILike,
    /// `IN (…)`.
    In,
    /// `NOT IN (…)`.
    NotIn,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "GLOB",
            Op::ILike => "LIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
        }
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

/// A literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `'text'` or `"text"`.
    Str(String),
    /// A number.
    Num(f64),
    /// `('a', 'b')`.
    List(Vec<String>),
}

/// One `ENTITY.KEY OP VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Clause {
    /// What is compared.
    pub entity: Entity,
    /// Its key.
    pub key: String,
    /// How.
    pub op: Op,
    /// With what.
    pub value: Literal,
}

/// One order-by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderKey {
    /// What is ordered by.
    pub entity: Entity,
    /// Its key.
    pub key: String,
    /// Ascending (the default) or descending.
    pub ascending: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(Entity, String),
    Str(String),
    Num(f64),
    Op(Op),
    And,
    Not,
    LParen,
    RParen,
    Comma,
}

fn invalid(message: impl Into<String>) -> TrackingError {
    TrackingError::Invalid(message.into())
}

fn entity_of(prefix: &str) -> Option<Entity> {
    Some(match prefix.to_ascii_lowercase().as_str() {
        "metric" | "metrics" => Entity::Metric,
        "param" | "params" | "parameter" | "parameters" => Entity::Param,
        "tag" | "tags" => Entity::Tag,
        "attribute" | "attributes" | "attr" | "run" => Entity::Attribute,
        "dataset" | "datasets" => Entity::Dataset,
        _ => return None,
    })
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':')
}

fn tokens(input: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let quoted = |i: &mut usize, quote: char| -> Result<String> {
        let mut s = String::new();
        *i += 1;
        loop {
            match chars.get(*i) {
                None => {
                    return Err(invalid(format!(
                        "unterminated {quote}…{quote} in the filter"
                    )));
                }
                Some(&c) if c == quote => {
                    // '' inside '…' is one quote, as in SQL.
                    if chars.get(*i + 1) == Some(&quote) {
                        s.push(quote);
                        *i += 2;
                        continue;
                    }
                    *i += 1;
                    return Ok(s);
                }
                Some(&c) => {
                    s.push(c);
                    *i += 1;
                }
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::LParen);
                i += 1;
            }
            ')' => {
                out.push(Token::RParen);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '\'' | '"' => out.push(Token::Str(quoted(&mut i, c)?)),
            '=' => {
                out.push(Token::Op(Op::Eq));
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token::Op(Op::Ne));
                i += 2;
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let ne = c == '<' && chars.get(i + 1) == Some(&'>');
                out.push(Token::Op(match (c, eq, ne) {
                    (_, _, true) => Op::Ne,
                    ('<', true, _) => Op::Le,
                    ('<', false, _) => Op::Lt,
                    (_, true, _) => Op::Ge,
                    _ => Op::Gt,
                }));
                i += if eq || ne { 2 } else { 1 };
            }
            _ if c.is_ascii_digit()
                || ((c == '-' || c == '.')
                    && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || matches!(chars[i], '.' | 'e' | 'E')
                        || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse::<f64>()
                    .map_err(|_| invalid(format!("`{text}` is not a number")))?;
                out.push(Token::Num(n));
            }
            '`' => {
                // A bare backticked key is an attribute.
                let key = quoted(&mut i, '`')?;
                out.push(Token::Ident(Entity::Attribute, key));
            }
            _ if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.to_ascii_uppercase().as_str() {
                    "AND" => {
                        out.push(Token::And);
                        continue;
                    }
                    "OR" => {
                        return Err(invalid(
                            "`OR` is not supported in a filter (MLflow's syntax joins clauses with AND only)",
                        ));
                    }
                    "NOT" => {
                        out.push(Token::Not);
                        continue;
                    }
                    "LIKE" => {
                        out.push(Token::Op(Op::Like));
                        continue;
                    }
                    "ILIKE" => {
                        out.push(Token::Op(Op::ILike));
                        continue;
                    }
                    "IN" => {
                        out.push(Token::Op(Op::In));
                        continue;
                    }
                    _ => {}
                }
                if chars.get(i) == Some(&'.')
                    && let Some(entity) = entity_of(&word)
                {
                    i += 1;
                    let key = match chars.get(i) {
                        Some(&q @ ('`' | '"')) => quoted(&mut i, q)?,
                        _ => {
                            let ks = i;
                            while i < chars.len() && is_key_char(chars[i]) {
                                i += 1;
                            }
                            chars[ks..i].iter().collect()
                        }
                    };
                    if key.is_empty() {
                        return Err(invalid(format!("`{word}.` needs a key")));
                    }
                    out.push(Token::Ident(entity, key));
                } else {
                    // A bare attribute may contain dots no further.
                    out.push(Token::Ident(Entity::Attribute, word));
                }
            }
            _ => return Err(invalid(format!("unexpected `{c}` in the filter"))),
        }
    }
    Ok(out)
}

/// Parses a filter into clauses joined by AND (empty: no clause).
pub fn parse_filter(filter: &str) -> Result<Vec<Clause>> {
    let toks = tokens(filter)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let (entity, key) = match &toks[i] {
            Token::Ident(e, k) => (*e, k.clone()),
            other => {
                return Err(invalid(format!(
                    "expected an identifier such as `metrics.accuracy`, found {}",
                    describe(other)
                )));
            }
        };
        i += 1;
        let op = match (toks.get(i), toks.get(i + 1)) {
            (Some(Token::Not), Some(Token::Op(Op::In))) => {
                i += 2;
                Op::NotIn
            }
            (Some(Token::Op(op)), _) => {
                i += 1;
                *op
            }
            (other, _) => {
                return Err(invalid(format!(
                    "expected a comparison after `{key}`, found {}",
                    other.map_or("the end".to_string(), describe)
                )));
            }
        };
        let value = if matches!(op, Op::In | Op::NotIn) {
            if toks.get(i) != Some(&Token::LParen) {
                return Err(invalid(format!("`{key} IN` needs a list: ('a', 'b')")));
            }
            i += 1;
            let mut items = Vec::new();
            loop {
                match toks.get(i) {
                    Some(Token::Str(s)) => items.push(s.clone()),
                    other => {
                        return Err(invalid(format!(
                            "a list holds quoted strings; found {}",
                            other.map_or("the end".to_string(), describe)
                        )));
                    }
                }
                i += 1;
                match toks.get(i) {
                    Some(Token::Comma) => i += 1,
                    Some(Token::RParen) => {
                        i += 1;
                        break;
                    }
                    other => {
                        return Err(invalid(format!(
                            "expected `,` or `)` in the list, found {}",
                            other.map_or("the end".to_string(), describe)
                        )));
                    }
                }
            }
            Literal::List(items)
        } else {
            let v = match toks.get(i) {
                Some(Token::Str(s)) => Literal::Str(s.clone()),
                Some(Token::Num(n)) => Literal::Num(*n),
                other => {
                    return Err(invalid(format!(
                        "expected a value after `{key}`, found {}",
                        other.map_or("the end".to_string(), describe)
                    )));
                }
            };
            i += 1;
            v
        };
        clauses.push(Clause {
            entity,
            key,
            op,
            value,
        });
        match toks.get(i) {
            None => {}
            Some(Token::And) if i + 1 < toks.len() => i += 1,
            Some(other) => {
                return Err(invalid(format!(
                    "expected `AND` between clauses, found {}",
                    describe(other)
                )));
            }
        }
    }
    Ok(clauses)
}

fn describe(t: &Token) -> String {
    match t {
        Token::Ident(_, k) => format!("`{k}`"),
        Token::Str(s) => format!("'{s}'"),
        Token::Num(n) => n.to_string(),
        Token::Op(op) => format!("`{}`", op.sql()),
        Token::And => "`AND`".into(),
        Token::Not => "`NOT`".into(),
        Token::LParen => "`(`".into(),
        Token::RParen => "`)`".into(),
        Token::Comma => "`,`".into(),
    }
}

/// Parses one order-by key: `metrics.acc DESC`, `params.C`, `start_time ASC`.
pub fn parse_order_by(text: &str) -> Result<OrderKey> {
    let trimmed = text.trim();
    let (head, ascending) = match trimmed.rsplit_once(char::is_whitespace) {
        Some((h, dir)) if dir.eq_ignore_ascii_case("desc") => (h.trim(), false),
        Some((h, dir)) if dir.eq_ignore_ascii_case("asc") => (h.trim(), true),
        _ => (trimmed, true),
    };
    match tokens(head)?.as_slice() {
        [Token::Ident(entity, key)] => Ok(OrderKey {
            entity: *entity,
            key: key.clone(),
            ascending,
        }),
        _ => Err(invalid(format!(
            "invalid order_by clause `{text}`: expected `KEY [ASC|DESC]`, e.g. `metrics.accuracy DESC`"
        ))),
    }
}

/// A compiled query: SQL selecting ids, and its bound values in order.
pub(crate) struct Compiled {
    pub sql: String,
    pub params: Vec<Value>,
}

/// MLflow's LIKE pattern as a GLOB pattern (case-sensitive).
fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// `column OP value`, binding the value.
fn condition(
    column: &str,
    clause: &Clause,
    numeric: bool,
    params: &mut Vec<Value>,
) -> Result<String> {
    let key = &clause.key;
    match (&clause.value, clause.op, numeric) {
        (Literal::Num(n), op, true) if op.is_comparison() => {
            params.push(Value::Real(*n));
            Ok(format!("{column} {} ?", op.sql()))
        }
        (Literal::Str(s), op, true) if op.is_comparison() => {
            // Times may be given quoted.
            let n: f64 = s
                .parse()
                .map_err(|_| invalid(format!("`{key}` compares numbers; `'{s}'` is not one")))?;
            params.push(Value::Real(n));
            Ok(format!("{column} {} ?", op.sql()))
        }
        (_, op, true) => Err(invalid(format!(
            "`{key}` is numeric: compare it with =, !=, <, <=, > or >=, not `{}`",
            op.sql()
        ))),
        (Literal::Str(s), Op::Like, false) => {
            params.push(Value::Text(like_to_glob(s)));
            Ok(format!("{column} GLOB ?"))
        }
        (Literal::Str(s), Op::ILike, false) => {
            params.push(Value::Text(s.clone()));
            Ok(format!("lower({column}) LIKE lower(?)"))
        }
        (Literal::Str(s), op, false) if matches!(op, Op::Eq | Op::Ne) => {
            params.push(Value::Text(s.clone()));
            Ok(format!("{column} {} ?", op.sql()))
        }
        (Literal::List(items), op @ (Op::In | Op::NotIn), false) => {
            if items.is_empty() {
                return Err(invalid(format!("`{key} IN ()` needs at least one value")));
            }
            params.extend(items.iter().map(|s| Value::Text(s.clone())));
            let marks = vec!["?"; items.len()].join(", ");
            Ok(format!("{column} {} ({marks})", op.sql()))
        }
        (Literal::Num(n), _, false) => Err(invalid(format!(
            "`{key}` holds strings: quote the value ('{n}')"
        ))),
        (_, op, false) => Err(invalid(format!(
            "`{key}` cannot be compared with `{}` here",
            op.sql()
        ))),
    }
}

/// A run attribute's column and whether it is numeric.
fn run_attribute(key: &str) -> Result<(&'static str, bool)> {
    Ok(match key {
        "run_id" | "run_uuid" | "id" => ("r.id", false),
        "run_name" => ("r.name", false),
        "status" => ("r.status", false),
        "user_id" | "user" => ("r.user", false),
        "start_time" => ("r.start_ms", true),
        "end_time" => ("r.end_ms", true),
        "artifact_uri" => ("r.artifact_uri", false),
        "lifecycle_stage" => ("r.lifecycle", false),
        "created" => ("r.start_ms", true),
        _ => {
            return Err(invalid(format!(
                "unknown run attribute `{key}`: use run_id, run_name, status, user_id, start_time, end_time, artifact_uri or lifecycle_stage"
            )));
        }
    })
}

/// The SQL selecting the ids of runs in `experiment_ids` that match.
pub(crate) fn run_query(
    experiment_ids: &[i64],
    filter: &str,
    view: ViewType,
    order_by: &[String],
) -> Result<Compiled> {
    if experiment_ids.is_empty() {
        return Err(invalid("name at least one experiment id to search runs in"));
    }
    let mut params: Vec<Value> = experiment_ids.iter().map(|&i| Value::Integer(i)).collect();
    let mut sql = format!(
        "SELECT r.id FROM tracked_runs r WHERE r.experiment_id IN ({}) AND {}",
        vec!["?"; experiment_ids.len()].join(", "),
        view.condition("r.lifecycle")
    );
    for clause in parse_filter(filter)? {
        let cond = match clause.entity {
            Entity::Metric => {
                params.push(Value::Text(clause.key.clone()));
                let inner = condition("m.value", &clause, true, &mut params)?;
                format!(
                    "EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_id = r.id AND m.key = ? AND m.is_nan = 0 AND {inner})"
                )
            }
            Entity::Param | Entity::Tag => {
                let table = if clause.entity == Entity::Param {
                    "run_params"
                } else {
                    "run_tags"
                };
                params.push(Value::Text(clause.key.clone()));
                let inner = condition("p.value", &clause, false, &mut params)?;
                format!(
                    "EXISTS (SELECT 1 FROM {table} p WHERE p.run_id = r.id AND p.key = ? AND {inner})"
                )
            }
            Entity::Attribute => {
                let (column, numeric) = run_attribute(&clause.key)?;
                condition(column, &clause, numeric, &mut params)?
            }
            Entity::Dataset => {
                let column = match clause.key.as_str() {
                    "name" => "d.name",
                    "digest" => "d.digest",
                    other => {
                        return Err(invalid(format!(
                            "unknown dataset attribute `{other}`: use name or digest"
                        )));
                    }
                };
                let inner = condition(column, &clause, false, &mut params)?;
                format!("EXISTS (SELECT 1 FROM run_inputs d WHERE d.run_id = r.id AND {inner})")
            }
        };
        sql.push_str(" AND ");
        sql.push_str(&cond);
    }
    let mut order = Vec::new();
    for text in order_by {
        let key = parse_order_by(text)?;
        let dir = if key.ascending { "ASC" } else { "DESC" };
        let expr = match key.entity {
            Entity::Metric => {
                params.push(Value::Text(key.key.clone()));
                "(SELECT m.value FROM latest_metrics m WHERE m.run_id = r.id AND m.key = ?)"
                    .to_string()
            }
            Entity::Param => {
                params.push(Value::Text(key.key.clone()));
                "(SELECT p.value FROM run_params p WHERE p.run_id = r.id AND p.key = ?)".to_string()
            }
            Entity::Tag => {
                params.push(Value::Text(key.key.clone()));
                "(SELECT t.value FROM run_tags t WHERE t.run_id = r.id AND t.key = ?)".to_string()
            }
            Entity::Attribute => run_attribute(&key.key)?.0.to_string(),
            Entity::Dataset => return Err(invalid("runs cannot be ordered by a dataset")),
        };
        // Runs without the key come last, whichever the direction (as MLflow).
        if matches!(key.entity, Entity::Metric | Entity::Param | Entity::Tag) {
            let again = params.last().cloned().expect("pushed above");
            params.push(again);
            order.push(format!("{expr} IS NULL, {expr} {dir}"));
        } else {
            order.push(format!("{expr} {dir}"));
        }
    }
    order.push("r.start_ms DESC".into());
    order.push("r.id ASC".into());
    sql.push_str(" ORDER BY ");
    sql.push_str(&order.join(", "));
    Ok(Compiled { sql, params })
}

/// An experiment attribute's column and whether it is numeric.
fn experiment_attribute(key: &str) -> Result<(&'static str, bool)> {
    Ok(match key {
        "name" => ("e.name", false),
        "experiment_id" | "id" => ("e.id", true),
        "creation_time" => ("e.created_ms", true),
        "last_update_time" => ("e.updated_ms", true),
        _ => {
            return Err(invalid(format!(
                "unknown experiment attribute `{key}`: use name, experiment_id, creation_time or last_update_time"
            )));
        }
    })
}

/// The SQL selecting the ids of experiments that match.
pub(crate) fn experiment_query(
    filter: &str,
    view: ViewType,
    order_by: &[String],
) -> Result<Compiled> {
    let mut params = Vec::new();
    let mut sql = format!(
        "SELECT e.id FROM experiments e WHERE {}",
        view.condition("e.lifecycle")
    );
    for clause in parse_filter(filter)? {
        let cond = match clause.entity {
            Entity::Attribute => {
                let (column, numeric) = experiment_attribute(&clause.key)?;
                condition(column, &clause, numeric, &mut params)?
            }
            Entity::Tag => {
                params.push(Value::Text(clause.key.clone()));
                let inner = condition("t.value", &clause, false, &mut params)?;
                format!(
                    "EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.id AND t.key = ? AND {inner})"
                )
            }
            _ => {
                return Err(invalid(format!(
                    "experiments are filtered by attributes (name, creation_time, last_update_time) and tags, not `{}`",
                    clause.key
                )));
            }
        };
        sql.push_str(" AND ");
        sql.push_str(&cond);
    }
    let mut order = Vec::new();
    for text in order_by {
        let key = parse_order_by(text)?;
        if key.entity != Entity::Attribute {
            return Err(invalid(format!(
                "experiments are ordered by name, experiment_id, creation_time or last_update_time, not `{text}`"
            )));
        }
        let (column, _) = experiment_attribute(&key.key)?;
        order.push(format!(
            "{column} {}",
            if key.ascending { "ASC" } else { "DESC" }
        ));
    }
    if order.is_empty() {
        order.push("e.created_ms DESC".into());
    }
    order.push("e.id ASC".into());
    sql.push_str(" ORDER BY ");
    sql.push_str(&order.join(", "));
    Ok(Compiled { sql, params })
}

/// The condition selecting logged models (by `name` only) in `experiment_ids`.
pub(crate) fn logged_model_query(
    experiment_ids: &[i64],
    filter: &str,
) -> Result<(String, Vec<Value>)> {
    let mut params: Vec<Value> = experiment_ids.iter().map(|&i| Value::Integer(i)).collect();
    let mut sql = if experiment_ids.is_empty() {
        "1".to_string()
    } else {
        format!(
            "experiment_id IN ({})",
            vec!["?"; experiment_ids.len()].join(", ")
        )
    };
    for clause in parse_filter(filter)? {
        if clause.entity != Entity::Attribute || clause.key != "name" {
            return Err(invalid(format!(
                "logged models are filtered by `name` only here, not `{}`",
                clause.key
            )));
        }
        sql.push_str(" AND ");
        sql.push_str(&condition("name", &clause, false, &mut params)?);
    }
    Ok((sql, params))
}

/// The token of a page starting at `offset`.
pub fn encode_page_token(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// The offset a page token names (none: 0).
pub fn decode_page_token(token: Option<&str>) -> Result<usize> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bad = || invalid(format!("invalid page token `{token}`"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    #[derive(serde::Deserialize)]
    struct Token {
        offset: usize,
    }
    let t: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(t.offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mlflow_filters() {
        let c = parse_filter(
            "metrics.acc > 0.9 and params.C = '1.0' AND tags.`my tag` LIKE 'a%' and attributes.status IN ('FINISHED', 'RUNNING') and tags.mlflow.runName != \"x\"",
        )
        .unwrap();
        assert_eq!(c.len(), 5);
        assert_eq!(
            c[0],
            Clause {
                entity: Entity::Metric,
                key: "acc".into(),
                op: Op::Gt,
                value: Literal::Num(0.9)
            }
        );
        assert_eq!(c[2].key, "my tag");
        assert_eq!(c[2].op, Op::Like);
        assert_eq!(
            c[3].value,
            Literal::List(vec!["FINISHED".into(), "RUNNING".into()])
        );
        assert_eq!(c[4].key, "mlflow.runName");
        assert_eq!(c[4].op, Op::Ne);
        assert!(parse_filter("").unwrap().is_empty());
        assert_eq!(
            parse_filter("run_name NOT IN ('a')").unwrap()[0].op,
            Op::NotIn
        );
        assert_eq!(
            parse_filter("metrics.loss <= -1e-3").unwrap()[0].value,
            Literal::Num(-1e-3)
        );
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        let msg = |f: &str| parse_filter(f).unwrap_err().to_string();
        assert!(msg("metrics.a > 1 or metrics.b > 2").contains("OR"));
        assert!(msg("metrics.a >").contains("expected a value"));
        assert!(msg("params.C = 'x").contains("unterminated"));
        assert!(msg("metrics.a 1").contains("expected a comparison"));
        assert!(msg("metrics.a > 1 metrics.b > 1").contains("AND"));
        assert!(msg("params.C IN 'a'").contains("needs a list"));
    }

    #[test]
    fn order_by_keys() {
        assert_eq!(
            parse_order_by("metrics.acc DESC").unwrap(),
            OrderKey {
                entity: Entity::Metric,
                key: "acc".into(),
                ascending: false
            }
        );
        assert!(parse_order_by("params.C").unwrap().ascending);
        assert_eq!(
            parse_order_by("attributes.start_time asc").unwrap().key,
            "start_time"
        );
        assert!(parse_order_by("metrics.a metrics.b").is_err());
    }

    #[test]
    fn compiled_queries_bind_their_values() {
        let q = run_query(
            &[1, 2],
            "metrics.acc > 0.5 and params.C = '1'",
            ViewType::ActiveOnly,
            &["metrics.acc DESC".into()],
        )
        .unwrap();
        assert_eq!(q.sql.matches('?').count(), q.params.len());
        assert!(run_query(&[1], "metrics.acc LIKE 'a'", ViewType::All, &[]).is_err());
        assert!(run_query(&[1], "params.C = 1", ViewType::All, &[]).is_err());
        assert!(run_query(&[1], "attributes.nope = 'x'", ViewType::All, &[]).is_err());
        let e = experiment_query("name LIKE 'lab/%'", ViewType::All, &["name".into()]).unwrap();
        assert_eq!(e.sql.matches('?').count(), e.params.len());
    }

    #[test]
    fn like_patterns_become_globs() {
        assert_eq!(like_to_glob("a%b_c*"), "a*b?c[*]");
    }

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(decode_page_token(Some(&encode_page_token(42))).unwrap(), 42);
        assert_eq!(decode_page_token(None).unwrap(), 0);
        assert!(decode_page_token(Some("not a token")).is_err());
    }
}
