//! What of a record a CEL expression reads, and the CEL value of just that: converting a whole
//! record value (every nested map, every string) for each evaluation costs far more than
//! evaluating `value.event_type == 2`. An expression that uses `value` only through field
//! selections (`value.bid.price`, `has(value.bid)`) gets a value holding those paths and
//! nothing else — the same answers, errors included, as the whole value would give, since CEL
//! can reach nothing else of it. Any other use of `value` (itself, an index, a macro variable
//! of that name) gets the whole value.

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr as E};
use cel::objects::{Key, Map};

use super::expr::to_cel;
use super::reads::Reads;
use crate::value::Value;

/// What is selected of a field: all of it, or some of its own fields.
#[derive(Debug)]
pub(super) enum Selection {
    /// All of it.
    Whole,
    /// Some of its fields.
    Fields(Fields),
}

/// Selected fields of a map, each with its name as a record key and as a CEL key.
pub(super) type Fields = Vec<(Arc<str>, Key, Selection)>;

/// Adds the selection `path` (non-empty) to `fields`.
fn insert(fields: &mut Fields, path: &[String]) {
    let Some((first, rest)) = path.split_first() else { return };
    let i = match fields.iter().position(|(name, _, _)| **name == **first) {
        Some(i) => i,
        None => {
            let selection = Selection::Fields(Vec::new());
            fields.push((Arc::from(first.as_str()), Key::String(Arc::new(first.clone())), selection));
            fields.len() - 1
        }
    };
    let selection = &mut fields[i].2;
    match selection {
        _ if rest.is_empty() => *selection = Selection::Whole,
        Selection::Fields(below) => insert(below, rest),
        Selection::Whole => {}
    }
}

/// How an expression reads the `value` variable.
#[derive(Debug)]
pub(super) enum ValueInput {
    /// Not at all.
    Unused,
    /// Only these selected paths.
    Paths(Fields),
    /// As a whole.
    Whole,
}

impl ValueInput {
    /// How `e` reads `value`.
    pub(super) fn of(e: &cel::IdedExpr) -> ValueInput {
        let mut paths = Fields::new();
        let mut whole = false;
        walk(e, &mut paths, &mut whole);
        match (whole, paths.is_empty()) {
            (true, _) => ValueInput::Whole,
            (false, true) => ValueInput::Unused,
            (false, false) => ValueInput::Paths(paths),
        }
    }

    /// What of `value` this expression reads.
    pub(super) fn reads(&self) -> Reads {
        fn of(fields: &Fields) -> Reads {
            Reads::Fields(
                fields
                    .iter()
                    .map(|(name, _, selection)| {
                        let below = match selection {
                            Selection::Whole => Reads::Whole,
                            Selection::Fields(f) => of(f),
                        };
                        (name.clone(), below)
                    })
                    .collect(),
            )
        }
        match self {
            ValueInput::Unused => Reads::nothing(),
            ValueInput::Paths(p) => of(p),
            ValueInput::Whole => Reads::Whole,
        }
    }

    /// The CEL value of `value` for this expression.
    pub(super) fn to_cel(&self, value: &Value) -> cel::Value {
        match self {
            ValueInput::Paths(p) => selected(p, value),
            ValueInput::Unused | ValueInput::Whole => to_cel(value),
        }
    }
}

/// `value` with only the `fields` selected: a map keeps the selected fields it has; anything
/// else (a path running into a non-map) is converted whole.
fn selected(fields: &Fields, value: &Value) -> cel::Value {
    let Value::Map(m) = value else { return to_cel(value) };
    let mut out = HashMap::with_capacity(fields.len());
    for (name, key, selection) in fields {
        if let Some(v) = m.get(name) {
            let v = match selection {
                Selection::Whole => to_cel(v),
                Selection::Fields(below) => selected(below, v),
            };
            out.insert(key.clone(), v);
        }
    }
    cel::Value::Map(Map { map: Arc::new(out) })
}

/// The field path of a selection chain rooted at the identifier `value`, outermost last.
fn value_path(e: &cel::IdedExpr) -> Option<Vec<String>> {
    match &e.expr {
        E::Ident(name) if name == "value" => Some(Vec::new()),
        E::Select(s) => {
            let mut path = value_path(&s.operand)?;
            path.push(s.field.clone());
            Some(path)
        }
        _ => None,
    }
}

fn walk(e: &cel::IdedExpr, paths: &mut Fields, whole: &mut bool) {
    if let Some(path) = value_path(e) {
        if path.is_empty() {
            *whole = true;
        } else {
            insert(paths, &path);
        }
        return;
    }
    let entries = |entries: &[cel::common::ast::IdedEntryExpr], paths: &mut Fields, whole: &mut bool| {
        for entry in entries {
            match &entry.expr {
                EntryExpr::StructField(f) => walk(&f.value, paths, whole),
                EntryExpr::MapEntry(m) => {
                    walk(&m.key, paths, whole);
                    walk(&m.value, paths, whole);
                }
            }
        }
    };
    match &e.expr {
        E::Comprehension(c) => {
            // A macro variable named `value` hides the record's: read it whole, to be safe.
            if c.iter_var == "value" || c.iter_var2.as_deref() == Some("value") || c.accu_var == "value" {
                *whole = true;
            }
            for part in [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                walk(part, paths, whole);
            }
        }
        E::Call(c) => c.target.iter().map(|t| &**t).chain(&c.args).for_each(|a| walk(a, paths, whole)),
        E::List(l) => l.elements.iter().for_each(|x| walk(x, paths, whole)),
        E::Map(m) => entries(&m.entries, paths, whole),
        E::Struct(s) => entries(&s.entries, paths, whole),
        E::Select(s) => walk(&s.operand, paths, whole),
        E::Unspecified | E::Ident(_) | E::Literal(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use cel::{Context, Program};

    use super::*;
    use crate::ops::expr::{Expr, from_cel};
    use crate::record::Record;

    /// The expression evaluated with every variable bound whole: what selecting must match.
    fn whole(src: &str, r: &Record) -> Result<Value, String> {
        let program = Program::compile(src).map_err(|e| e.to_string())?;
        let mut ctx = Context::default();
        ctx.add_variable_from_value("value", to_cel(&r.value));
        ctx.add_variable_from_value("key", to_cel(&r.key));
        ctx.add_variable_from_value("ts", cel::Value::Int(r.ts));
        from_cel(program.execute(&ctx).map_err(|e| e.to_string())?)
    }

    fn records() -> Vec<Record> {
        let bid: Value = serde_json::from_str(
            r#"{"event_type": 2, "dateTime": 7, "person": null,
                "bid": {"price": 5, "extra": "xy", "m": {"a": 1, "b": [1, 2]}}}"#,
        )
        .expect("json");
        let person: Value =
            serde_json::from_str(r#"{"event_type": 0, "person": {"id": 3}, "bid": null}"#).expect("json");
        [bid, person, Value::Int(4), Value::str("s")]
            .into_iter()
            .map(|value| Record { key: Value::Int(1), ts: 10, value })
            .collect()
    }

    #[test]
    fn selected_fields_give_what_the_whole_value_gives() {
        let sources = [
            "value.event_type == 2",
            "value.bid.price * 2",
            "double(value.bid.price) * 0.908",
            "has(value.bid)",
            "has(value.auction)",
            "has(value.bid.price)",
            "has(value.bid.nope)",
            "value.person.id",
            "value.nope.x",
            "value.bid.m.a + value.bid.price",
            "{'a': value.bid, 'b': value.bid.price, 'c': value.bid.m.b}",
            "value.bid.m == {'a': 1, 'b': [1, 2]}",
            "value.bid == value.bid && value.bid.m.a == 1",
            "size(value)",
            "value['bid'].price",
            "[1, 2].map(value, value * 2)",
            "value.event_type == 2 && value.bid.price > 3",
            "value.bid.extra + string(key) + string(ts)",
            "key + ts",
            "value",
        ];
        for src in sources {
            let expr = Expr::compile("n", src).expect("compiles");
            for r in records() {
                let want = whole(src, &r);
                let got = expr.eval(&mut Expr::context(), &r).map_err(|e| e.to_string());
                match (&want, &got) {
                    (Ok(w), Ok(g)) => assert_eq!(w, g, "{src} on {}", r.value),
                    (Err(w), Err(g)) => assert!(g.contains(w.as_str()), "{src} on {}: {g} vs {w}", r.value),
                    _ => panic!("{src} on {}: {got:?}, whole: {want:?}", r.value),
                }
            }
        }
    }

    #[test]
    fn only_selections_of_value_are_narrowed() {
        let input = |src: &str| ValueInput::of(Program::compile(src).expect("parses").expression());
        assert!(matches!(input("value.bid.price + value.dateTime"), ValueInput::Paths(p) if p.len() == 2));
        assert!(matches!(input("size(value)"), ValueInput::Whole));
        assert!(matches!(input("[1].map(value, value)"), ValueInput::Whole));
        assert!(matches!(input("key + 1"), ValueInput::Unused));
    }
}
