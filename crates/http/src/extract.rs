//! Extractors that turn request parts into typed values, with problem+json rejections
//! that name the offending field. Handlers use these instead of axum's own, whose
//! rejections are plain text.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use bytes::Bytes;
use http::request::Parts;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::objects::Objects;
use crate::problem::{ApiError, FieldError};

/// A JSON body: `Content-Type: application/json` (or `+json`), at most the configured
/// body limit, well-formed (else 400) and of the right shape (else 422 with the field).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    } else {
        ApiError::bad_request("the request body could not be read")
    }
}

/// Parses JSON, mapping serde's error to a problem that names the field. A struct
/// is read only from a JSON object, at any depth (`objects.rs`).
///
/// A number with a zero fraction (`5.0`) is an integer in JSON Schema, and so in the
/// API's documents; serde refuses it for an integer field, so a body that fails on
/// one is read again with such numbers made integers. (serde_json parses floats
/// exactly, its `float_roundtrip` feature: its fast parsing could read a large
/// integral number as one with a fraction.)
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(Objects(&mut de));
    let value = match result {
        Ok(value) => value,
        Err(e)
            if e.inner()
                .to_string()
                .starts_with("invalid type: floating point") =>
        {
            let mut json: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| json_problem(".", e))?;
            integral_floats_to_integers(&mut json);
            return serde_path_to_error::deserialize(Objects(json))
                .map_err(|e| json_problem(&e.path().to_string(), e.into_inner()));
        }
        Err(e) => return Err(json_problem(&e.path().to_string(), e.into_inner())),
    };
    // Nothing but whitespace may follow the value.
    de.end().map_err(|e| {
        ApiError::bad_request(format!(
            "malformed JSON: {}",
            strip_position(&e.to_string())
        ))
    })?;
    Ok(value)
}

/// A problem for serde's error at `path`: 400 for malformed JSON, 422 naming the
/// field for a value of the wrong shape.
fn json_problem(path: &str, e: serde_json::Error) -> ApiError {
    let message = strip_position(&e.to_string());
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ApiError::bad_request(format!("malformed JSON: {message}"))
        }
        serde_json::error::Category::Io => ApiError::bad_request("the body could not be read"),
        serde_json::error::Category::Data => {
            ApiError::validation(vec![FieldError::new(field_name(path, &message), message)])
        }
    }
}

/// Turns every number with a zero fraction that fits an `i64` into that integer.
fn integral_floats_to_integers(json: &mut serde_json::Value) {
    use serde_json::Value;
    match json {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                // Exactly representable: |f| < 2^53.
                *n = serde_json::Number::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_to_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// serde_json appends " at line 1 column 12"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rsplit_once(" at line ") {
        Some((head, _)) => head.to_string(),
        None => message.to_string(),
    }
}

/// The field an error is about: the path serde was at (for an unknown field, that
/// is the field itself), or for a missing field the parent path plus the name serde
/// quotes in its message.
fn field_name(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => name.to_string(),
        (p, Some(name)) => format!("{p}.{name}"),
        (".", None) => "body".to_string(),
        (p, None) => p.to_string(),
    }
}

/// A query string parsed into `T`; a value of the wrong type is a 400 naming the
/// parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        let value: Result<T, _> = serde_path_to_error::deserialize(de);
        value.map(ApiQuery).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let field = field_name(&path, &message);
            ApiError::invalid_query(vec![FieldError::new(field, message)])
        })
    }
}

/// Path parameters parsed into `T`; a malformed one is a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| {
                ApiError::bad_request(format!("invalid path parameter: {}", e.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        age: u8,
        address: Option<Address>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Address {
        city: String,
    }

    #[test]
    fn an_integral_float_is_an_integer() {
        let b: Body = parse_json(br#"{"email":"a@b.c","age":7.0}"#).expect("7.0 is 7");
        assert_eq!(b.age, 7);
        let e = parse_json::<Body>(br#"{"email":"a@b.c","age":7.5}"#).expect_err("7.5");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.problem().errors[0].field, "age");
        // A large one too, read exactly (serde_json's fast float parsing read
        // this one as ...161.5, a fraction: schemathesis found it).
        #[derive(Debug, Deserialize)]
        struct Version {
            version: i64,
        }
        let v: Version = parse_json(br#"{"version":3998637223904162.0}"#).expect("integral");
        assert_eq!(v.version, 3_998_637_223_904_162);
    }

    #[test]
    fn a_body_is_an_object_not_an_array_of_its_fields() {
        let e = parse_json::<Address>(br#" ["Oslo"]"#).expect_err("an array");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let e = parse_json::<Body>(br#"["a@b.c", 7.0]"#).expect_err("an array, reread");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let list: Vec<u8> = parse_json(b"[1, 2]").expect("a list is read as one");
        assert_eq!(list, [1, 2]);
    }

    #[test]
    fn a_struct_inside_is_an_object_not_an_array_either() {
        // Under a field, an option, and reread for an integral float.
        for body in [
            br#"{"email":"a@b.c","age":3,"address":["Oslo"]}"#.as_slice(),
            br#"{"email":"a@b.c","age":3.0,"address":["Oslo"]}"#,
        ] {
            let e = parse_json::<Body>(body).expect_err("a nested array");
            assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(e.problem().errors[0].field, "address");
        }
        // In a list, and in an enum's variant.
        let e = parse_json::<Vec<Address>>(br#"[{"city":"Oslo"},["Bergen"]]"#)
            .expect_err("an array in a list");
        assert_eq!(e.problem().errors[0].field, "[1]");
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        enum Ship {
            To(Address),
            Pickup { store: String },
        }
        assert!(parse_json::<Ship>(br#"{"To":["Oslo"]}"#).is_err());
        assert!(parse_json::<Ship>(br#"{"Pickup":["Main St"]}"#).is_err());
        // The same written as objects passes; lists and tuples stay lists.
        let b: Body =
            parse_json(br#"{"email":"a@b.c","age":3,"address":{"city":"Oslo"}}"#).expect("objects");
        assert_eq!(b.address.map(|a| a.city).as_deref(), Some("Oslo"));
        let ships: Vec<Ship> = parse_json(br#"[{"To":{"city":"Oslo"}},{"Pickup":{"store":"x"}}]"#)
            .expect("variants as objects");
        assert_eq!(ships.len(), 2);
        let pairs: Vec<(String, u8)> = parse_json(br#"[["a",1]]"#).expect("tuples");
        assert_eq!(pairs, [("a".to_string(), 1)]);
    }

    #[test]
    fn malformed_json_is_400() {
        let e = parse_json::<Body>(b"{\"email\": ").expect_err("malformed");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn trailing_garbage_is_400() {
        let e = parse_json::<Address>(br#"{"city":"Oslo"} xyz"#).expect_err("trailing");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(parse_json::<Address>(b"{\"city\":\"Oslo\"}  \n").is_ok());
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = parse_json::<Body>(br#"{"email":"a@b.co","age":"old"}"#).expect_err("type");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.problem().errors[0].field, "age");
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let e =
            parse_json::<Body>(br#"{"email":"a@b.co","age":3,"admin":true}"#).expect_err("unknown");
        assert_eq!(e.problem().errors[0].field, "admin");
        let e = parse_json::<Body>(br#"{"email":"a@b.co"}"#).expect_err("missing");
        assert_eq!(e.problem().errors[0].field, "age");
        let e = parse_json::<Body>(br#"{"email":"a@b.co","age":3,"address":{"town":"x"}}"#)
            .expect_err("nested unknown");
        assert_eq!(e.problem().errors[0].field, "address.town");
    }
}
