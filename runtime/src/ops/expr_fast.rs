//! A direct evaluator for the common shapes of CEL expressions: field selections, literals,
//! arithmetic, comparisons, `&&`/`||`/`!`, the conditional, `int()`/`double()`/`string()` and
//! map and list literals — what projections and filters such as Nexmark's q0–q2 are made of.
//!
//! It works on record [`Value`]s as they are, with no conversion to CEL values and no
//! evaluation context, and it only ever answers what CEL would. It answers nothing (`None`)
//! wherever CEL's rules are subtle: mixed numeric types, overflow, division by zero, a missing
//! field, a NaN ordering, any error at all. Then the record goes to the interpreter, which
//! gives CEL's answer or CEL's error. An expression with any other construct (macros, `has`,
//! indexing, other functions, unsigned or bytes literals) is not compiled here at all.
//! `expr_fast_tests.rs` checks it against the interpreter on random expressions and values.

use std::sync::Arc;

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr as E, LiteralValue, operators as op};

use crate::record::Record;
use crate::value::{Fields, Lookup, Schema, Value};

/// An expression compiled for direct evaluation.
#[derive(Debug)]
pub struct Fast(Node);

#[derive(Debug)]
enum Node {
    Lit(Value),
    Value,
    Key,
    Ts,
    /// A field of a map, and where it was last found.
    Select(Box<Node>, Arc<str>, Lookup),
    /// A chain of selections from `value` (`value.bid.price`): each field, and where it was
    /// last found. One node, so that the commonest read is a loop, not a recursion per step.
    Path(Box<[(Arc<str>, Lookup)]>),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Bin(Bin, Box<Node>, Box<Node>),
    Cast(Cast, Box<Node>),
    /// A map literal: its shape, and the value of each name in the shape's order.
    Map(Schema, Vec<Node>),
    List(Vec<Node>),
}

#[derive(Clone, Copy, Debug)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug)]
enum Cast {
    Int,
    Double,
    String,
}

/// A value borrowed from the record or made by the evaluation.
enum V<'a> {
    Ref(&'a Value),
    Own(Value),
}

impl V<'_> {
    fn get(&self) -> &Value {
        match self {
            V::Ref(v) => v,
            V::Own(v) => v,
        }
    }

    fn owned(self) -> Value {
        match self {
            V::Ref(v) => v.clone(),
            V::Own(v) => v,
        }
    }
}

impl Fast {
    /// Compiles `e` when every part of it is a construct this evaluator knows.
    pub fn compile(e: &IdedExpr) -> Option<Fast> {
        node(e).map(Fast)
    }

    /// The expression's value for `r`, or `None` where the interpreter must answer.
    #[inline]
    pub fn eval(&self, r: &Record) -> Option<Value> {
        eval(&self.0, r).map(V::owned)
    }
}

fn boxed(e: &IdedExpr) -> Option<Box<Node>> {
    node(e).map(Box::new)
}

fn node(e: &IdedExpr) -> Option<Node> {
    Some(match &e.expr {
        E::Literal(l) => Node::Lit(match l {
            LiteralValue::Boolean(b) => Value::Bool(*b.inner()),
            LiteralValue::Int(i) => Value::Int(*i.inner()),
            LiteralValue::Double(d) => Value::Float(*d.inner()),
            LiteralValue::String(s) => Value::str(s.inner()),
            LiteralValue::Null => Value::Null,
            LiteralValue::Bytes(_) | LiteralValue::UInt(_) => return None,
        }),
        E::Ident(name) => match name.as_str() {
            "value" => Node::Value,
            "key" => Node::Key,
            "ts" => Node::Ts,
            _ => return None,
        },
        E::Select(s) if !s.test => match boxed(&s.operand)? {
            of if matches!(*of, Node::Value) => {
                Node::Path(Box::new([(Arc::from(s.field.as_str()), Lookup::default())]))
            }
            of => match *of {
                Node::Path(steps) => {
                    let mut steps = steps.into_vec();
                    steps.push((Arc::from(s.field.as_str()), Lookup::default()));
                    Node::Path(steps.into())
                }
                of => Node::Select(Box::new(of), Arc::from(s.field.as_str()), Lookup::default()),
            },
        },
        E::Map(m) => {
            let mut entries: Vec<(Arc<str>, Node)> = Vec::with_capacity(m.entries.len());
            for entry in &m.entries {
                let EntryExpr::MapEntry(entry) = &entry.expr else { return None };
                let E::Literal(LiteralValue::String(k)) = &entry.key.expr else { return None };
                if entry.optional || entries.iter().any(|(have, _)| &**have == k.inner()) {
                    return None;
                }
                entries.push((Arc::from(k.inner()), node(&entry.value)?));
            }
            // In name order, the shape's. Evaluation is pure and any failure hands the whole
            // expression to the interpreter, so the order of evaluation is unseen.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let schema = Schema::new(entries.iter().map(|(k, _)| k));
            Node::Map(schema, entries.into_iter().map(|(_, n)| n).collect())
        }
        E::List(l) if l.optional_indices.is_empty() => Node::List(l.elements.iter().map(node).collect::<Option<_>>()?),
        E::Call(c) => {
            if c.target.is_some() {
                return None;
            }
            match (c.func_name.as_str(), c.args.as_slice()) {
                (op::LOGICAL_NOT, [a]) => Node::Not(boxed(a)?),
                (op::NEGATE, [a]) => Node::Neg(boxed(a)?),
                (op::LOGICAL_AND, [a, b]) => Node::And(boxed(a)?, boxed(b)?),
                (op::LOGICAL_OR, [a, b]) => Node::Or(boxed(a)?, boxed(b)?),
                (op::CONDITIONAL, [c, a, b]) => Node::Cond(boxed(c)?, boxed(a)?, boxed(b)?),
                ("int", [a]) => Node::Cast(Cast::Int, boxed(a)?),
                ("double", [a]) => Node::Cast(Cast::Double, boxed(a)?),
                ("string", [a]) => Node::Cast(Cast::String, boxed(a)?),
                (name, [a, b]) => {
                    let bin = match name {
                        op::ADD => Bin::Add,
                        op::SUBSTRACT => Bin::Sub,
                        op::MULTIPLY => Bin::Mul,
                        op::DIVIDE => Bin::Div,
                        op::MODULO => Bin::Rem,
                        op::EQUALS => Bin::Eq,
                        op::NOT_EQUALS => Bin::Ne,
                        op::LESS => Bin::Lt,
                        op::LESS_EQUALS => Bin::Le,
                        op::GREATER => Bin::Gt,
                        op::GREATER_EQUALS => Bin::Ge,
                        _ => return None,
                    };
                    Node::Bin(bin, boxed(a)?, boxed(b)?)
                }
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// The value at a chain of selections from `value`.
#[inline(always)]
fn path<'a>(steps: &'a [(Arc<str>, Lookup)], r: &'a Record) -> Option<&'a Value> {
    let mut cur = &r.value;
    for (field, memo) in steps {
        match cur {
            Value::Map(m) => cur = m.get_remembered(field, memo)?,
            _ => return None,
        }
    }
    Some(cur)
}

/// An operand's value: literals and selections, the commonest operands, without a call (a
/// projection's or comparison's operands then cost no recursion); anything else by [`eval`].
#[inline(always)]
fn operand<'a>(n: &'a Node, r: &'a Record) -> Option<V<'a>> {
    match n {
        Node::Lit(v) => Some(V::Ref(v)),
        Node::Path(steps) => path(steps, r).map(V::Ref),
        _ => eval(n, r),
    }
}

fn eval<'a>(n: &'a Node, r: &'a Record) -> Option<V<'a>> {
    Some(match n {
        Node::Lit(v) => V::Ref(v),
        Node::Value => V::Ref(&r.value),
        Node::Key => V::Ref(&r.key),
        Node::Ts => V::Own(Value::Int(r.ts)),
        Node::Path(steps) => V::Ref(path(steps, r)?),
        Node::Select(of, field, memo) => match eval(of, r)? {
            V::Ref(Value::Map(m)) => V::Ref(m.get_remembered(field, memo)?),
            V::Own(Value::Map(m)) => V::Own(m.get_remembered(field, memo)?.clone()),
            _ => return None,
        },
        Node::Not(a) => V::Own(Value::Bool(!boolean(a, r)?)),
        Node::Neg(a) => V::Own(match operand(a, r)?.get() {
            Value::Int(i) => Value::Int(i.checked_neg()?),
            Value::Float(f) => Value::Float(-f),
            _ => return None,
        }),
        // CEL's `&&` and `||` absorb an error on either side when the other side decides; an
        // undecided side goes to the interpreter, which knows whether it was an error.
        Node::And(a, b) => V::Own(Value::Bool(boolean(a, r)? && boolean(b, r)?)),
        Node::Or(a, b) => V::Own(Value::Bool(boolean(a, r)? || boolean(b, r)?)),
        Node::Cond(c, a, b) => {
            if boolean(c, r)? {
                operand(a, r)?
            } else {
                operand(b, r)?
            }
        }
        Node::Bin(op, a, b) => V::Own(binary(*op, operand(a, r)?.get(), operand(b, r)?.get())?),
        Node::Cast(cast, a) => {
            let v = operand(a, r)?;
            match (cast, v.get()) {
                (Cast::Int, Value::Int(_)) | (Cast::Double, Value::Float(_)) | (Cast::String, Value::Str(_)) => v,
                (Cast::Double, Value::Int(i)) => V::Own(Value::Float(*i as f64)),
                // Within the range both ways; CEL errors outside it, and on NaN.
                (Cast::Int, Value::Float(f)) if f.abs() < 9.0e18 => V::Own(Value::Int(f.trunc() as i64)),
                (Cast::String, Value::Int(i)) => V::Own(Value::str(&i.to_string())),
                _ => return None,
            }
        }
        Node::Map(schema, values) => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                out.push(operand(v, r)?.owned());
            }
            V::Own(Value::Map(Arc::new(Fields::from_schema(schema, out))))
        }
        Node::List(items) => {
            V::Own(Value::List(Arc::new(items.iter().map(|i| eval(i, r).map(V::owned)).collect::<Option<_>>()?)))
        }
    })
}

fn boolean(n: &Node, r: &Record) -> Option<bool> {
    match eval(n, r)?.get() {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn binary(op: Bin, a: &Value, b: &Value) -> Option<Value> {
    use std::cmp::Ordering;
    let order = |o: Ordering| {
        Value::Bool(match op {
            Bin::Lt => o.is_lt(),
            Bin::Le => o.is_le(),
            Bin::Gt => o.is_gt(),
            Bin::Ge => o.is_ge(),
            Bin::Eq => o.is_eq(),
            _ => o.is_ne(),
        })
    };
    Some(match (op, a, b) {
        (Bin::Add, Value::Int(x), Value::Int(y)) => Value::Int(x.checked_add(*y)?),
        (Bin::Sub, Value::Int(x), Value::Int(y)) => Value::Int(x.checked_sub(*y)?),
        (Bin::Mul, Value::Int(x), Value::Int(y)) => Value::Int(x.checked_mul(*y)?),
        (Bin::Div, Value::Int(x), Value::Int(y)) => Value::Int(x.checked_div(*y)?),
        (Bin::Rem, Value::Int(x), Value::Int(y)) => Value::Int(x.checked_rem(*y)?),
        (Bin::Add, Value::Float(x), Value::Float(y)) => Value::Float(x + y),
        (Bin::Sub, Value::Float(x), Value::Float(y)) => Value::Float(x - y),
        (Bin::Mul, Value::Float(x), Value::Float(y)) => Value::Float(x * y),
        (Bin::Div, Value::Float(x), Value::Float(y)) if *y != 0.0 => Value::Float(x / y),
        (Bin::Add, Value::Str(x), Value::Str(y)) => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Value::Str(Arc::from(s))
        }
        (Bin::Eq | Bin::Ne | Bin::Lt | Bin::Le | Bin::Gt | Bin::Ge, Value::Int(x), Value::Int(y)) => order(x.cmp(y)),
        (Bin::Eq | Bin::Ne | Bin::Lt | Bin::Le | Bin::Gt | Bin::Ge, Value::Str(x), Value::Str(y)) => order(x.cmp(y)),
        (Bin::Eq | Bin::Ne | Bin::Lt | Bin::Le | Bin::Gt | Bin::Ge, Value::Float(x), Value::Float(y)) => {
            order(x.partial_cmp(y)?)
        }
        (Bin::Eq | Bin::Ne, Value::Bool(x), Value::Bool(y)) => order(x.cmp(y)),
        _ => return None,
    })
}
