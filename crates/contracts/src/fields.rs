//! Fields several services check alike: each rule once, beside the JSON Schema
//! that documents it, so the OpenAPI documents allow exactly what the handlers
//! accept (the public API is fuzzed against its document with that rule, and the
//! tests here hold each pattern to its check).
//!
//! Struct fields take the schemas with `#[schema(schema_with = line_schema::<120>)]`.
//!
//! The patterns are ECMA-262 (JSON Schema's dialect), anchored, and also mean the
//! same in Rust's `regex` (the tests here) — but in Python's `re`, `$` also matches
//! before a final newline: read them there with `fullmatch`, as jsonschema
//! validators do.

use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{KnownFormat, Object, SchemaFormat};

/// What [`line`] accepts: no control characters (Unicode `Cc`) and at least one
/// character that is not white space (`char::is_whitespace`, spelled out: `\s`
/// differs between regex dialects).
pub const LINE_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$";

/// What [`optional_line`] accepts: no control characters; blank is "none".
pub const OPTIONAL_LINE_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";

/// What [`text`] accepts: no control characters but newlines and tabs.
pub const TEXT_PATTERN: &str = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$";

/// What [`required_text`] accepts: [`TEXT_PATTERN`], and not blank.
pub const REQUIRED_TEXT_PATTERN: &str = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$";

/// What a category id is: a lowercase slug.
pub const SLUG_PATTERN: &str = "^[a-z0-9-]{1,64}$";

/// One line of at most `max` characters with no control character, not blank:
/// trimmed.
pub fn line(input: &str, max: usize) -> Result<&str, String> {
    check(input, max, false)?;
    match input.trim() {
        "" => Err("is required".into()),
        line => Ok(line),
    }
}

/// [`line`], where blank means "none".
pub fn optional_line(input: &str, max: usize) -> Result<Option<&str>, String> {
    check(input, max, false)?;
    Ok(Some(input.trim()).filter(|l| !l.is_empty()))
}

/// Free text of at most `max` characters, where newlines and tabs are the only
/// control characters; may be empty: trimmed.
pub fn text(input: &str, max: usize) -> Result<&str, String> {
    check(input, max, true)?;
    Ok(input.trim())
}

/// A category id: a lowercase slug (see [`SLUG_PATTERN`]).
pub fn category_id(input: &str) -> Result<(), &'static str> {
    let ok = (1..=64).contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("must be a category id such as `home-kitchen`")
    }
}

/// [`text`] that is not blank.
pub fn required_text(input: &str, max: usize) -> Result<&str, String> {
    match text(input, max)? {
        "" => Err("is required".into()),
        text => Ok(text),
    }
}

fn check(input: &str, max: usize, multiline: bool) -> Result<(), String> {
    if input.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    let allowed = |c: char| multiline && (c == '\n' || c == '\t');
    if input.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// The schema of a [`line`] of at most `MAX` characters.
pub fn line_schema<const MAX: usize>() -> Object {
    string(LINE_PATTERN, MAX).build()
}

/// [`line_schema`], or `null` (a PATCH field left as it is).
pub fn nullable_line_schema<const MAX: usize>() -> Object {
    nullable(line_schema::<MAX>())
}

/// The schema of an [`optional_line`], absent or `null` too.
pub fn optional_line_schema<const MAX: usize>() -> Object {
    nullable(string(OPTIONAL_LINE_PATTERN, MAX).build())
}

/// The schema of [`text`] of at most `MAX` characters.
pub fn text_schema<const MAX: usize>() -> Object {
    string(TEXT_PATTERN, MAX).build()
}

/// The schema of [`required_text`] of at most `MAX` characters.
pub fn required_text_schema<const MAX: usize>() -> Object {
    string(REQUIRED_TEXT_PATTERN, MAX).build()
}

/// [`required_text_schema`], or `null` (a PATCH field left as it is).
pub fn nullable_required_text_schema<const MAX: usize>() -> Object {
    nullable(required_text_schema::<MAX>())
}

/// `schema`, or `null` too.
pub fn nullable(mut schema: Object) -> Object {
    let mut types = match schema.schema_type {
        SchemaType::Type(t) => vec![t],
        SchemaType::Array(types) => types,
        SchemaType::AnyValue => return schema,
    };
    if !types.contains(&Type::Null) {
        types.push(Type::Null);
    }
    schema.schema_type = SchemaType::Array(types);
    schema
}

/// The schema of a category id (see [`SLUG_PATTERN`]).
pub fn slug_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(SLUG_PATTERN))
        .examples(["home-kitchen"])
        .build()
}

/// The schema of a UUID.
pub fn uuid_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .build()
}

fn string(pattern: &str, max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .max_length(Some(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &[&str] = &[
        "Office",
        " a ",
        "",
        "   ",
        "\u{a0}",
        "\u{3000}x",
        "a\u{0}b",
        "a\nb",
        "a\tb",
        "\u{85}",
        "x\u{9f}",
        "ümlaut 🎉",
        "\u{7f}",
        "\r",
        "Office\n",
        "\u{feff}",
        "\u{1c}",
    ];

    #[test]
    fn the_patterns_say_what_the_checks_accept() {
        let pattern = |p: &str| regex::Regex::new(p).expect("a regex");
        let (l, o, t, r) = (
            pattern(LINE_PATTERN),
            pattern(OPTIONAL_LINE_PATTERN),
            pattern(TEXT_PATTERN),
            pattern(REQUIRED_TEXT_PATTERN),
        );
        for s in SAMPLES {
            assert_eq!(l.is_match(s), line(s, 50).is_ok(), "line {s:?}");
            assert_eq!(
                o.is_match(s),
                optional_line(s, 50).is_ok(),
                "optional {s:?}"
            );
            assert_eq!(t.is_match(s), text(s, 50).is_ok(), "text {s:?}");
            assert_eq!(
                r.is_match(s),
                required_text(s, 50).is_ok(),
                "required {s:?}"
            );
        }
    }

    #[test]
    fn the_category_id_pattern_says_what_the_check_accepts() {
        let pattern = regex::Regex::new(SLUG_PATTERN).expect("a regex");
        let long = "a".repeat(65);
        for s in [
            "home-kitchen",
            "a",
            "",
            "Home",
            "a b",
            "a_b",
            "ü",
            long.as_str(),
            "x
",
        ] {
            assert_eq!(pattern.is_match(s), category_id(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn nullable_adds_null_once() {
        let once = nullable(slug_schema());
        assert!(once.schema_type == SchemaType::Array(vec![Type::String, Type::Null]));
        assert!(nullable(once.clone()).schema_type == once.schema_type);
    }

    #[test]
    fn lines_are_trimmed_and_counted_as_sent() {
        assert_eq!(line("  Office ", 9), Ok("Office"));
        assert!(line("  Office  ", 9).is_err(), "10 characters as sent");
        assert_eq!(line("  ", 9), Err("is required".to_string()));
        assert_eq!(optional_line("  ", 9), Ok(None));
        assert_eq!(text("", 9), Ok(""));
        assert_eq!(text(" two\nlines ", 20), Ok("two\nlines"));
    }
}
