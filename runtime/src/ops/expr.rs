//! CEL expressions over a record (`value`, `key`, `ts`), compiled once per operator.
//! Expressions that reference no variable are evaluated once and reused; an evaluation binds
//! only the variables the expression names, and of `value` only the fields it selects
//! (`expr_input.rs`). Common shapes (selections, arithmetic, comparisons, map literals) are
//! evaluated straight on the record's values (`expr_fast.rs`), the interpreter answering the
//! rest.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, Program};

use super::OpError;
use super::expr_fast::Fast;
use super::expr_input::ValueInput;
use super::reads::Reads;
use crate::record::Record;
use crate::value::{Fields, Value};

/// A compiled CEL expression.
pub struct Expr {
    node: String,
    source: String,
    program: Program,
    constant: Option<Value>,
    fast: Option<Fast>,
    value: ValueInput,
    uses_key: bool,
    uses_ts: bool,
}

impl Expr {
    /// Compiles and checks `source`: its syntax, its variables (`value`, `key`, `ts` only), its
    /// functions (CEL's standard ones only) and, when it names no variable, its value. Errors
    /// name the node and the expression.
    pub fn compile(node: &str, source: &str) -> Result<Expr, OpError> {
        let error = |message: String| OpError::Expression { node: node.into(), expr: source.into(), message };
        let program = Program::compile(source).map_err(|e| error(syntax_message(&e.to_string())))?;
        let variables: Vec<String> = program.references().variables().into_iter().map(String::from).collect();
        let mut bound = Vec::new();
        macro_variables(program.expression(), &mut bound);
        let unknown: Vec<&String> =
            variables.iter().filter(|v| !matches!(v.as_str(), "value" | "key" | "ts") && !bound.contains(v)).collect();
        if !unknown.is_empty() {
            return Err(error(format!("unknown variable(s) {unknown:?}; use value, key or ts")));
        }
        let references = program.references();
        let unknown: Vec<&str> = references.functions().into_iter().filter(|f| !is_known_function(f)).collect();
        if !unknown.is_empty() {
            return Err(error(format!("unknown function(s) {unknown:?}")));
        }
        drop(references);
        let named = |v: &str| variables.iter().any(|x| x == v);
        let value = match ValueInput::of(program.expression()) {
            _ if !named("value") => ValueInput::Unused,
            // `value` is named but no use was found: bind it whole rather than miss one.
            ValueInput::Unused => ValueInput::Whole,
            input => input,
        };
        let (uses_key, uses_ts) = (named("key"), named("ts"));
        let fast = Fast::compile(program.expression());
        let mut expr =
            Expr { node: node.into(), source: source.into(), program, constant: None, fast, value, uses_key, uses_ts };
        if variables.is_empty() {
            let ctx = Context::default();
            let v = expr.program.execute(&ctx).map_err(|e| error(e.to_string()))?;
            expr.constant = Some(from_cel(v).map_err(error)?);
        }
        Ok(expr)
    }

    /// The expression's value when it references no variable (evaluated once at compile time).
    pub fn constant(&self) -> Option<&Value> {
        self.constant.as_ref()
    }

    /// A slot for the evaluation context; keep one per batch and pass it to [`Expr::eval`],
    /// which creates the context only when the expression is not a constant.
    pub fn context() -> Option<Context<'static, 'static>> {
        None
    }

    /// Evaluates the expression for one record.
    pub fn eval(&self, root: &mut Option<Context<'static, 'static>>, r: &Record) -> Result<Value, OpError> {
        if let Some(c) = &self.constant {
            return Ok(c.clone());
        }
        if let Some(v) = self.fast.as_ref().and_then(|f| f.eval(r)) {
            return Ok(v);
        }
        self.interpret(root, r)
    }

    /// Evaluates the expression for one record with the CEL interpreter.
    fn interpret(&self, root: &mut Option<Context<'static, 'static>>, r: &Record) -> Result<Value, OpError> {
        let root = root.get_or_insert_with(Context::default);
        let mut ctx = root.new_inner_scope();
        if !matches!(self.value, ValueInput::Unused) {
            ctx.add_variable_from_value("value", self.value.to_cel(&r.value));
        }
        if self.uses_key {
            ctx.add_variable_from_value("key", to_cel(&r.key));
        }
        if self.uses_ts {
            ctx.add_variable_from_value("ts", cel::Value::Int(r.ts));
        }
        let v = self.program.execute(&ctx).map_err(|e| self.error(r, e.to_string()))?;
        from_cel(v).map_err(|m| self.error(r, m))
    }

    /// What of a record's value the expression reads.
    pub fn reads(&self) -> Reads {
        self.value.reads()
    }

    /// Whether the direct evaluator compiled this expression (it still hands the interpreter
    /// every record it cannot answer exactly).
    pub fn is_direct(&self) -> bool {
        self.fast.is_some()
    }

    /// The direct evaluator's answer alone (`None`: not compiled, or left to the interpreter).
    #[cfg(test)]
    pub(crate) fn eval_direct(&self, r: &Record) -> Option<Value> {
        self.fast.as_ref().and_then(|f| f.eval(r))
    }

    /// The interpreter's answer alone.
    #[cfg(test)]
    pub(crate) fn eval_interpreted(&self, r: &Record) -> Result<Value, OpError> {
        self.interpret(&mut None, r)
    }

    fn error(&self, r: &Record, message: String) -> OpError {
        OpError::Expression {
            node: self.node.clone(),
            expr: self.source.clone(),
            message: format!("{message} (record key {}, value {})", r.key, r.value),
        }
    }
}

/// The variables a macro binds (`x` of `list.map(x, x * 2)`, `exists`, `all`, `filter` …),
/// which CEL's references list beside the free ones.
fn macro_variables(e: &cel::IdedExpr, out: &mut Vec<String>) {
    use cel::common::ast::{EntryExpr, Expr as E};
    let entries = |entries: &[cel::common::ast::IdedEntryExpr], out: &mut Vec<String>| {
        for entry in entries {
            match &entry.expr {
                EntryExpr::StructField(f) => macro_variables(&f.value, out),
                EntryExpr::MapEntry(m) => {
                    macro_variables(&m.key, out);
                    macro_variables(&m.value, out);
                }
            }
        }
    };
    match &e.expr {
        E::Comprehension(c) => {
            out.push(c.iter_var.clone());
            out.extend(c.iter_var2.clone());
            for part in [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                macro_variables(part, out);
            }
        }
        E::Call(c) => c.target.iter().map(|t| &**t).chain(&c.args).for_each(|a| macro_variables(a, out)),
        E::List(l) => l.elements.iter().for_each(|x| macro_variables(x, out)),
        E::Map(m) => entries(&m.entries, out),
        E::Struct(s) => entries(&s.entries, out),
        E::Select(s) => macro_variables(&s.operand, out),
        E::Unspecified | E::Ident(_) | E::Literal(_) => {}
    }
}

/// The first line of a CEL syntax error, without its `ERROR: <input>:` prefix: the line and
/// column and what was expected (the later lines draw the expression and a caret).
fn syntax_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    first.trim_start_matches("ERROR: ").trim_start_matches("<input>:").to_string()
}

/// Whether `name` is a function CEL's default context knows, as a global (`size(x)`) or a
/// member (`x.startsWith(y)`): a call without arguments fails with anything but "undeclared
/// reference to `name`" (a wrong argument count or type). Names that are not a plain call
/// (operators) count as known.
fn is_known_function(name: &str) -> bool {
    [format!("{name}()"), format!("''.{name}()")].iter().any(|probe| match Program::compile(probe) {
        Ok(p) => !matches!(
            p.execute(&Context::default()),
            Err(cel::ExecutionError::UndeclaredReference(r)) if r.as_str() == name
        ),
        Err(_) => true,
    })
}

/// Converts a record value to a CEL value.
pub fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Int(i) => cel::Value::Int(*i),
        Value::Float(f) => cel::Value::Float(*f),
        Value::Str(s) => cel::Value::String(Arc::new(s.to_string())),
        Value::List(l) => cel::Value::List(Arc::new(l.iter().map(to_cel).collect())),
        Value::Map(m) => {
            let map: HashMap<Key, cel::Value> =
                m.iter().map(|(k, v)| (Key::String(Arc::new(k.to_string())), to_cel(v))).collect();
            cel::Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// Converts a CEL result back to a record value.
pub fn from_cel(v: cel::Value) -> Result<Value, String> {
    Ok(match v {
        cel::Value::Null => Value::Null,
        cel::Value::Bool(b) => Value::Bool(b),
        cel::Value::Int(i) => Value::Int(i),
        cel::Value::UInt(u) => i64::try_from(u).map(Value::Int).unwrap_or(Value::Float(u as f64)),
        cel::Value::Float(f) => Value::Float(f),
        cel::Value::String(s) => Value::str(&s),
        cel::Value::List(l) => Value::List(Arc::new(l.iter().cloned().map(from_cel).collect::<Result<_, _>>()?)),
        cel::Value::Map(m) => {
            let mut out = Fields::with_capacity(m.map.len());
            for (k, v) in m.map.iter() {
                let key: Arc<str> = match k {
                    Key::String(s) => Arc::from(s.as_str()),
                    Key::Int(i) => Arc::from(i.to_string().as_str()),
                    Key::Uint(u) => Arc::from(u.to_string().as_str()),
                    Key::Bool(b) => Arc::from(b.to_string().as_str()),
                };
                out.insert(key, from_cel(v.clone())?);
            }
            Value::Map(Arc::new(out))
        }
        other => return Err(format!("unsupported result type {:?}", other.type_of())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: Value) -> Record {
        Record { key: Value::Int(3), ts: 10, value }
    }

    #[test]
    fn evaluates_over_value_key_and_ts() {
        let e = Expr::compile("m", "value.n * 2 + key + ts").expect("compiles");
        let mut ctx = Expr::context();
        let v = e.eval(&mut ctx, &rec(Value::map([("n", Value::Int(5))]))).expect("evals");
        assert_eq!(v, Value::Int(23));
    }

    #[test]
    fn builds_maps_and_folds_constants() {
        let e = Expr::compile("m", r#"{"user": value, "n": 1}"#).expect("compiles");
        let v = e.eval(&mut Expr::context(), &rec(Value::str("ann"))).expect("evals");
        assert_eq!(v.get_path("user"), Some(&Value::str("ann")));
        let c = Expr::compile("m", "1 + 1").expect("compiles");
        assert_eq!(c.constant, Some(Value::Int(2)));
    }

    #[test]
    fn bad_expressions_name_node_and_expression() {
        let err = Expr::compile("my-map", "value +").err().expect("fails").to_string();
        assert!(err.contains("my-map") && err.contains("value +"), "{err}");
        let err = Expr::compile("my-map", "foo + 1").err().expect("fails").to_string();
        assert!(err.contains("unknown variable"), "{err}");
        let err = Expr::compile("my-map", "[1].map(x, x + y)").err().expect("fails").to_string();
        assert!(err.ends_with("unknown variable(s) [\"y\"]; use value, key or ts"), "{err}");
    }

    #[test]
    fn a_syntax_error_is_one_line_with_its_column() {
        let err = Expr::compile("m", "value +").err().expect("fails").to_string();
        assert!(err.starts_with("node m: expression \"value +\": 1:8: Syntax error"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    /// Against the interpreter itself: an expression is refused for an unknown function exactly
    /// when evaluating it on a record fails with an undeclared reference to that function.
    #[test]
    fn unknown_functions_fail_at_compile_time_exactly_when_evaluation_would() {
        let record = rec(Value::str("abc"));
        for src in [
            "size(value)",
            "value.startsWith('a')",
            "value.endsWith('a') || value.contains('b')",
            "value.matches('a+')",
            "string(key) + string(ts)",
            "int(ts) + 1",
            "double(ts) * 2.0",
            "string(timestamp('2024-01-01T00:00:00Z'))",
            "string(duration('1s'))",
            "max(1, ts)",
            "foo(value)",
            "value.frobnicate()",
            "lenght(value) > 1",
            "size(value) + bar(ts)",
            "[1, 2].map(x, x * ts)",
            "[ts].exists(x, x > 1) && [1].all(y, y > 0)",
            "size([ts, 2].filter(x, x > 1)) > 0",
            "[1].map(x, frob(x))",
        ] {
            let program = Program::compile(src).expect("parses");
            let mut ctx = Context::default();
            ctx.add_variable_from_value("value", to_cel(&record.value));
            ctx.add_variable_from_value("key", to_cel(&record.key));
            ctx.add_variable_from_value("ts", cel::Value::Int(record.ts));
            let undeclared = match program.execute(&ctx) {
                Err(cel::ExecutionError::UndeclaredReference(name)) => Some(name.to_string()),
                _ => None,
            };
            match (Expr::compile("f", src), undeclared) {
                (Ok(_), None) => {}
                (Err(e), Some(name)) => assert!(
                    e.to_string().starts_with(&format!("node f: expression {src:?}: unknown function(s) [{name:?}")),
                    "{e}"
                ),
                (r, undeclared) => panic!("{src}: compile {:?}, evaluation's undeclared {undeclared:?}", r.err()),
            }
        }
    }
}
