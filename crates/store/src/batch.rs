//! [`Batch`]: statements of one write transaction sent to the database together.
//!
//! sqlx runs each SQLite connection on a thread of its own, and every statement is
//! a round trip to it: the task hands the statement over, the thread wakes, runs
//! it and wakes the task again. While a write transaction makes those trips it
//! holds the file's one write slot, and under load each hand-off waits for a core:
//! at checkout saturation orders held its slot 1.1 ms per transaction, busy 95% of
//! the time, for statements SQLite runs in a fraction of that
//! (`emporium_store_write_hold_seconds`; docs/benchmarks.md). A batch sends a
//! transaction's statements in one trip.
//!
//! On SQLite a query string may hold several statements, run in turn, whose `$N`
//! parameters all number into the one list of arguments; a batch joins its
//! statements that way, renumbering each one's `$N` after the arguments bound
//! before it. PostgreSQL prepares one statement per query, so there the statements
//! run one after another, as they would without a batch. sqlx calls SQLite's
//! several statements per query deprecated (it keeps them in 0.9): a test here
//! fails if a release stops running them, and [`crate::Tx::run`] checks that every
//! statement answered.
//!
//! A statement whose outcome decides the transaction (a conditional `UPDATE` that
//! must move one row) is marked with [`Batch::require_one`]; [`crate::Db::write`]
//! then undoes the whole batch when it did not (see write.rs). One statement per
//! `push`: a `;` outside quotes is refused, as are fewer or more arguments than
//! the statement's highest `$N`.

use sqlx::any::AnyArguments;
use sqlx::error::BoxDynError;
use sqlx::{Any, Arguments, Encode, Type};

use crate::Backend;

/// Statements to run in one transaction, each with its own `$1…` parameters, in
/// the order pushed. Made by [`crate::Tx::batch`], run by [`crate::Tx::run`].
pub struct Batch {
    backend: Backend,
    /// SQLite: the statements so far, joined and numbered across.
    joined: String,
    /// SQLite: every statement's arguments, in order.
    shared: AnyArguments,
    /// SQLite: the parameters the last statement pushed refers to (its highest `$N`).
    last_params: usize,
    /// SQLite: the arguments bound before the last statement.
    last_offset: usize,
    /// PostgreSQL: each statement with its own arguments.
    each: Vec<(&'static str, AnyArguments)>,
    statements: usize,
    /// The first argument that could not be encoded.
    error: Option<BoxDynError>,
    /// The event types the batch publishes (see [`crate::Tx::note_published`]).
    pub(crate) published: Vec<&'static str>,
    /// The statements that must change exactly one row, or the write is undone.
    pub(crate) required: Vec<usize>,
}

impl Batch {
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            backend,
            joined: String::new(),
            shared: AnyArguments::default(),
            last_params: 0,
            last_offset: 0,
            each: Vec::new(),
            statements: 0,
            error: None,
            published: Vec::new(),
            required: Vec::new(),
        }
    }

    /// Adds a statement; its arguments follow with [`Batch::bind`]. Its position in
    /// the batch, counted from 0, is its place in [`crate::Tx::run`]'s answer.
    pub fn push(&mut self, sql: &'static str) -> &mut Self {
        match self.backend {
            Backend::Sqlite => {
                self.check_binds();
                if !self.joined.is_empty() {
                    self.joined.push_str(";\n");
                }
                self.last_offset = self.shared.len();
                self.last_params = renumber(sql, self.last_offset, &mut self.joined);
            }
            Backend::Postgres => self.each.push((sql, AnyArguments::default())),
        }
        if has_separator(sql) && self.error.is_none() {
            self.error =
                Some(format!("statement {} of a batch holds a `;`", self.statements).into());
        }
        self.statements += 1;
        self
    }

    /// Binds the next argument of the statement pushed last.
    pub fn bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any>,
    {
        let args = match self.backend {
            Backend::Sqlite => Some(&mut self.shared),
            Backend::Postgres => self.each.last_mut().map(|(_, args)| args),
        };
        let result = match args {
            Some(args) => args.add(value),
            None => Err("an argument bound before any statement".into()),
        };
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Requires the statement pushed last to change exactly one row (a move
    /// conditional on the state it leaves): otherwise [`crate::Db::write`] undoes
    /// the whole batch and answers `None`. On SQLite a check right after it, in the
    /// same query string, stops the batch there (an insert of `changes()` into a
    /// temporary table whose `CHECK` accepts only 1), so the decision costs no round
    /// trip of its own.
    pub fn require_one(&mut self) -> &mut Self {
        if let Some(last) = self.statements.checked_sub(1)
            && !self.required.contains(&last)
        {
            self.required.push(last);
            if self.backend == Backend::Sqlite {
                self.check_binds();
                self.joined.push_str(";\n");
                self.joined.push_str(GUARD);
                self.last_offset = self.shared.len();
                self.last_params = 0;
            }
        }
        self
    }

    /// Records that the batch publishes an event of type `kind` (the outbox does).
    pub fn note_published(&mut self, kind: &'static str) {
        if !self.published.contains(&kind) {
            self.published.push(kind);
        }
    }

    /// How many statements the batch holds: the next one pushed is at this index.
    pub fn len(&self) -> usize {
        self.statements
    }

    pub fn is_empty(&self) -> bool {
        self.statements == 0
    }

    /// On SQLite the numbering of the next statement starts after the arguments
    /// bound so far, so a statement bound fewer arguments than its parameters would
    /// take the next one's, and one bound more would shift the next one's: an error
    /// of the caller, reported when the batch runs.
    fn check_binds(&mut self) {
        let bound = self.shared.len() - self.last_offset;
        if bound != self.last_params && self.error.is_none() {
            self.error = Some(
                format!(
                    "statement {} of a batch binds {bound} arguments for {} parameters",
                    self.statements, self.last_params
                )
                .into(),
            );
        }
    }

    /// What to send: on SQLite one query string and its arguments; on PostgreSQL the
    /// statements one by one.
    pub(crate) fn into_parts(mut self) -> Result<Parts, sqlx::Error> {
        if self.backend == Backend::Sqlite {
            self.check_binds();
        }
        if let Some(e) = self.error {
            return Err(sqlx::Error::Encode(e));
        }
        Ok(match self.backend {
            Backend::Sqlite => Parts::Joined {
                sql: self.joined,
                args: self.shared,
                statements: self.statements,
                required: self.required,
            },
            Backend::Postgres => Parts::Each {
                statements: self.each,
                required: self.required,
            },
        })
    }
}

pub(crate) enum Parts {
    /// The statements joined, with the checks [`Batch::require_one`] added after
    /// the statements it names (each answers too, so `answers` counts them).
    Joined {
        sql: String,
        args: AnyArguments,
        statements: usize,
        required: Vec<usize>,
    },
    Each {
        statements: Vec<(&'static str, AnyArguments)>,
        required: Vec<usize>,
    },
}

/// SQLite: the check after a statement that must change one row; each connection
/// has the table (`Db`'s connect hook), emptied before every commit.
pub(crate) const GUARD: &str = "INSERT INTO temp.batch_guard (changed) SELECT changes()";
pub(crate) const GUARD_TABLE: &str =
    "CREATE TEMP TABLE IF NOT EXISTS batch_guard (changed INTEGER NOT NULL CHECK (changed = 1))";
pub(crate) const GUARD_CLEAR: &str = "DELETE FROM temp.batch_guard";

/// Whether `sql` holds a `;` outside quotes (more than one statement, which would
/// shift the answers of those after it).
fn has_separator(sql: &str) -> bool {
    let mut quoted = false;
    sql.chars().any(|c| {
        if c == '\'' {
            quoted = !quoted;
        }
        c == ';' && !quoted
    })
}

/// Appends `sql` to `out` with every `$N` outside quotes raised by `offset`;
/// returns the highest `N` it saw.
pub(crate) fn renumber(sql: &str, offset: usize, out: &mut String) -> usize {
    let mut highest = 0;
    let mut quoted = false;
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '$' || quoted {
            out.push(c);
            continue;
        }
        let digits = &sql[i + 1..];
        let len = digits.bytes().take_while(u8::is_ascii_digit).count();
        match digits[..len].parse::<usize>() {
            Ok(n) => {
                highest = highest.max(n);
                out.push('$');
                out.push_str(&(n + offset).to_string());
                for _ in 0..len {
                    chars.next();
                }
            }
            Err(_) => out.push(c),
        }
    }
    highest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_after_those_before_them() {
        let mut out = String::new();
        let highest = renumber(
            "UPDATE t SET a = $2, b = '$1 stays' WHERE id = $1 AND c = $10",
            3,
            &mut out,
        );
        assert_eq!(
            out,
            "UPDATE t SET a = $5, b = '$1 stays' WHERE id = $4 AND c = $13"
        );
        assert_eq!(highest, 10);
        let mut out = String::new();
        assert_eq!(renumber("SELECT '$', $ FROM t", 1, &mut out), 0);
        assert_eq!(out, "SELECT '$', $ FROM t");
    }

    #[test]
    fn a_statement_bound_short_is_an_error() {
        let mut batch = Batch::new(Backend::Sqlite);
        batch.push("INSERT INTO t VALUES ($1, $2)").bind(1_i64);
        batch
            .push("INSERT INTO t VALUES ($1, $2)")
            .bind(2_i64)
            .bind(3_i64);
        let Err(e) = batch.into_parts() else {
            panic!("a short statement accepted");
        };
        assert!(e.to_string().contains("binds 1 arguments for 2"), "{e}");
        let mut batch = Batch::new(Backend::Sqlite);
        batch
            .push("INSERT INTO t VALUES ($1)")
            .bind(1_i64)
            .bind(2_i64);
        assert!(
            batch.into_parts().is_err(),
            "more arguments than parameters"
        );
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let mut batch = Batch::new(backend);
            batch.push("DELETE FROM t; DELETE FROM u");
            assert!(batch.into_parts().is_err(), "two statements in one push");
            let mut batch = Batch::new(backend);
            batch.push("INSERT INTO t VALUES (';')");
            assert!(batch.into_parts().is_ok(), "a quoted `;`");
        }
        let mut batch = Batch::new(Backend::Sqlite);
        batch
            .push("INSERT INTO t VALUES ($1, $2)")
            .bind(1_i64)
            .bind(2_i64);
        batch.push("INSERT INTO t VALUES ($1)");
        assert!(
            batch.into_parts().is_err(),
            "the last statement is checked too"
        );
    }
}
