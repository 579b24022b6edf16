//! Simple arithmetic expressions for per-copy values in model files: numbers, the variables
//! of the context (`i` and `n` for a population's copies, `i` and `j` for a connection's
//! source and target), `+ - * / %` (remainder as C's fmod), parentheses, unary minus, and
//! `floor(x)`, `min(x, y)`, `max(x, y)`, `abs(x)`. Everything is computed in f64, left to
//! right, as written: the same expression in Python gives the same numbers (`%` there is
//! `math.fmod`).

use std::fmt;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Var(usize),
    Neg(Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Floor,
    Min,
    Max,
    Abs,
}

impl Func {
    fn by_name(name: &str) -> Option<(Func, usize)> {
        Some(match name {
            "floor" => (Func::Floor, 1),
            "min" => (Func::Min, 2),
            "max" => (Func::Max, 2),
            "abs" => (Func::Abs, 1),
            _ => return None,
        })
    }
}

/// Why an expression could not be read: what, and where (a character offset).
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub at: usize,
    pub msg: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.msg, self.at + 1)
    }
}

impl Expr {
    /// Parses `text` with the variables `vars` (their names; `Var(k)` is `vars[k]`).
    pub fn parse(text: &str, vars: &[&str]) -> Result<Expr, ExprError> {
        let mut p = P { s: text.as_bytes(), pos: 0, vars };
        let e = p.sum()?;
        p.ws();
        if p.pos < p.s.len() {
            return Err(p.err("unexpected text"));
        }
        Ok(e)
    }

    /// The value with the variables at `vals`.
    pub fn eval(&self, vals: &[f64]) -> f64 {
        match self {
            Expr::Num(x) => *x,
            Expr::Var(k) => vals[*k],
            Expr::Neg(e) => -e.eval(vals),
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.eval(vals), b.eval(vals));
                match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                    Op::Rem => a % b,
                }
            }
            Expr::Call(f, args) => {
                let x = args[0].eval(vals);
                match f {
                    Func::Floor => x.floor(),
                    Func::Abs => x.abs(),
                    Func::Min => x.min(args[1].eval(vals)),
                    Func::Max => x.max(args[1].eval(vals)),
                }
            }
        }
    }
}

struct P<'a> {
    s: &'a [u8],
    pos: usize,
    vars: &'a [&'a str],
}

impl P<'_> {
    fn err(&self, msg: &str) -> ExprError {
        ExprError { at: self.pos, msg: msg.to_string() }
    }

    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.product()?;
        while let Some(c @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let op = if c == b'+' { Op::Add } else { Op::Sub };
            e = Expr::Bin(op, Box::new(e), Box::new(self.product()?));
        }
        Ok(e)
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.unary()?;
        while let Some(c @ (b'*' | b'/' | b'%')) = self.peek() {
            self.pos += 1;
            let op = match c {
                b'*' => Op::Mul,
                b'/' => Op::Div,
                _ => Op::Rem,
            };
            e = Expr::Bin(op, Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let e = self.sum()?;
                if self.peek() != Some(b')') {
                    return Err(self.err("expected `)`"));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let start = self.pos;
                while self.pos < self.s.len() && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'.') {
                    // An exponent's sign belongs to the number.
                    if matches!(self.s[self.pos], b'e' | b'E') && matches!(self.s.get(self.pos + 1), Some(b'+' | b'-')) {
                        self.pos += 1;
                    }
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                text.parse::<f64>().map(Expr::Num).map_err(|_| ExprError { at: start, msg: format!("bad number `{text}`") })
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self.pos < self.s.len() && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_') {
                    self.pos += 1;
                }
                let name = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                if let Some(k) = self.vars.iter().position(|v| *v == name) {
                    return Ok(Expr::Var(k));
                }
                let Some((f, arity)) = Func::by_name(name) else {
                    let vars = self.vars.join(", ");
                    return Err(ExprError {
                        at: start,
                        msg: format!("unknown name `{name}`; variables here: {vars}; functions: floor, min, max, abs"),
                    });
                };
                if self.peek() != Some(b'(') {
                    return Err(self.err(&format!("expected `(` after {name}")));
                }
                self.pos += 1;
                let mut args = vec![self.sum()?];
                while self.peek() == Some(b',') {
                    self.pos += 1;
                    args.push(self.sum()?);
                }
                if self.peek() != Some(b')') {
                    return Err(self.err("expected `)`"));
                }
                self.pos += 1;
                if args.len() != arity {
                    return Err(ExprError { at: start, msg: format!("{name} takes {arity} argument(s), not {}", args.len()) });
                }
                Ok(Expr::Call(f, args))
            }
            Some(_) => Err(self.err("expected a number, a variable, a function or `(`")),
            None => Err(self.err("the expression ends too early")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(text: &str, i: f64) -> f64 {
        Expr::parse(text, &["i", "n"]).unwrap().eval(&[i, 10.0])
    }

    #[test]
    fn arithmetic_as_written() {
        assert_eq!(ev("0.10 + 0.0005 * (i % 41)", 45.0), 0.10 + 0.0005 * (45.0f64 % 41.0));
        assert_eq!(ev("-i - -2", 3.0), -1.0);
        assert_eq!(ev("2 * 3 + 4 * 5", 0.0), 26.0);
        assert_eq!(ev("1e-3 * n + 2.5E+1", 0.0), 1e-3 * 10.0 + 25.0);
        assert_eq!(ev("floor(i / 3) + max(i, 2) - min(1, abs(-4))", 7.0), 2.0 + 7.0 - 1.0);
        assert_eq!(ev("(i - 1) / (n - 1)", 4.0), 3.0 / 9.0);
    }

    #[test]
    fn errors_say_where() {
        let e = Expr::parse("1 + k", &["i"]).unwrap_err();
        assert!(e.msg.contains("unknown name `k`") && e.at == 4, "{e}");
        assert!(Expr::parse("(1 + 2", &[]).unwrap_err().msg.contains("`)`"));
        assert!(Expr::parse("1 2", &[]).unwrap_err().msg.contains("unexpected"));
        assert!(Expr::parse("min(1)", &[]).unwrap_err().msg.contains("2 argument"));
        assert!(Expr::parse("", &[]).unwrap_err().msg.contains("ends"));
    }
}
