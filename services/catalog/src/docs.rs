//! JSON Schemas of catalog's own request fields, for its OpenAPI document: each
//! allows exactly what [`crate::domain`] accepts.

use emporium_contracts::fields::{nullable, slug_schema};
use utoipa::openapi::Object;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};

use crate::domain::{
    MAX_ATTRIBUTE_KEY_CHARS, MAX_ATTRIBUTE_VALUE_CHARS, MAX_ATTRIBUTES, MAX_IMAGE_URL_LEN,
    MAX_PRICE_MINOR,
};

/// What `check_image_url` accepts: a path on this site (not `//`) or an https URL
/// with a plain host (and port), with no white space or control character.
pub const IMAGE_URL_PATTERN: &str = r"^(?:/(?:[^/\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*)?|https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*)?)$";

/// A price: more than zero, at most 1,000,000.00, in the shop's currency.
pub fn price() -> Object {
    let amount = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_PRICE_MINOR))
        .description(Some("Minor units (cents)"));
    let currency = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Z]{3}$"))
        .description(Some("The shop's currency (ISO 4217)"));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("amount", amount)
        .property("currency", currency)
        .required("amount")
        .required("currency")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build()
}

pub fn nullable_price() -> Object {
    nullable(price())
}

/// Up to 50 named attributes (name 1-64 characters, value up to 256).
pub fn attributes() -> Object {
    let key = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_ATTRIBUTE_KEY_CHARS));
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_ATTRIBUTE_VALUE_CHARS));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(MAX_ATTRIBUTES))
        .additional_properties(Some(value))
        .property_names(Some(key))
        .build()
}

pub fn nullable_attributes() -> Object {
    nullable(attributes())
}

/// An image: a path on this site or an https URL; `null` for none.
pub fn image_url() -> Object {
    nullable(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(IMAGE_URL_PATTERN))
            .max_length(Some(MAX_IMAGE_URL_LEN))
            .build(),
    )
}

/// A category id, or `null` (left as it is).
pub fn nullable_slug() -> Object {
    nullable(slug_schema())
}
