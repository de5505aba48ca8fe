//! Products, their specifications and advertisements.

use std::fmt;

use super::FieldErrors;

/// Longest title the catalogue accepts, in characters (not bytes).
pub const MAX_TITLE_CHARS: usize = 50;
/// Bounds on the other text of a product, in characters, and on its specifications.
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;
pub const MAX_IMAGE_PATH_CHARS: usize = 2_048;
pub const MAX_SPECIFICATIONS: usize = 50;
pub const MAX_SPECIFICATION_ITEM_CHARS: usize = 100;
pub const MAX_SPECIFICATION_VALUE_CHARS: usize = 1_000;
/// Ratings run from 0 to this, inclusive.
pub const MAX_RATE: f64 = 10.0;

/// The id of a product: always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProductId(i64);

impl ProductId {
    pub fn parse(field: &str, raw: i64) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let id = Self::collect(field, raw, &mut errors);
        errors.finish(id, field)
    }

    /// Parses `raw`, recording a problem under `field` instead of returning it.
    pub(crate) fn collect(field: &str, raw: i64, errors: &mut FieldErrors) -> Option<Self> {
        if raw > 0 {
            Some(Self(raw))
        } else {
            errors.add(field, "must be a positive product id");
            None
        }
    }

    /// For ids the database assigned (which are positive by construction).
    pub(crate) fn from_stored(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Product fields as a client sent them, before any check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UncheckedProduct {
    pub title: String,
    pub price_cents: i64,
    pub rate: f64,
    pub description: String,
    pub cover: String,
    pub detail: String,
    pub specifications: Vec<UncheckedSpecification>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UncheckedSpecification {
    pub item: String,
    pub value: String,
}

/// A product that may be saved: title trimmed, non-empty and at most 50 characters, price >= 0
/// cents, rate within 0..=10, every specification with a non-empty item and value.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductDraft {
    title: String,
    price_cents: i64,
    rate: f64,
    description: String,
    cover: String,
    detail: String,
    specifications: Vec<SpecificationDraft>,
}

/// A specification line that may be saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecificationDraft {
    item: String,
    value: String,
}

impl SpecificationDraft {
    pub fn item(&self) -> &str {
        &self.item
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

impl ProductDraft {
    /// Checks every field and reports every problem, not just the first.
    pub fn parse(input: UncheckedProduct) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let draft = Self::collect(input, &mut errors);
        errors.finish(draft, "product")
    }

    /// As [`Self::parse`], for a request where the product itself may be missing.
    pub fn parse_required(input: Option<UncheckedProduct>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let draft = Self::collect_required(input, &mut errors);
        errors.finish(draft, "product")
    }

    fn collect_required(input: Option<UncheckedProduct>, errors: &mut FieldErrors) -> Option<Self> {
        match input {
            Some(input) => Self::collect(input, errors),
            None => {
                errors.add("product", "is required");
                None
            }
        }
    }

    pub(crate) fn collect(input: UncheckedProduct, errors: &mut FieldErrors) -> Option<Self> {
        let title = input.title.trim();
        let title_chars = title.chars().count();
        if title.is_empty() {
            errors.add("title", "must not be empty");
        } else if title_chars > MAX_TITLE_CHARS {
            errors.add(
                "title",
                format!("must be at most {MAX_TITLE_CHARS} characters (got {title_chars})"),
            );
        }
        if title.chars().any(char::is_control) {
            errors.add("title", "must not contain control characters");
        }
        if input.price_cents < 0 {
            errors.add("price_cents", "must not be negative");
        }
        // NaN fails the range check too.
        if !(0.0..=MAX_RATE).contains(&input.rate) {
            errors.add("rate", format!("must be between 0 and {MAX_RATE}"));
        }
        // Free text may span lines, but no database stores a NUL inside text.
        for (field, text, max) in [
            ("description", &input.description, MAX_DESCRIPTION_CHARS),
            ("cover", &input.cover, MAX_IMAGE_PATH_CHARS),
            ("detail", &input.detail, MAX_IMAGE_PATH_CHARS),
        ] {
            if text.contains('\0') {
                errors.add(field, "must not contain NUL characters");
            } else if text.chars().count() > max {
                errors.add(field, format!("must be at most {max} characters"));
            }
        }
        if input.specifications.len() > MAX_SPECIFICATIONS {
            errors.add(
                "specifications",
                format!("at most {MAX_SPECIFICATIONS} specifications"),
            );
            return None;
        }
        let mut specifications = Vec::with_capacity(input.specifications.len());
        for (i, spec) in input.specifications.into_iter().enumerate() {
            let (item, value) = (spec.item.trim(), spec.value.trim());
            for (name, text, max) in [
                ("item", item, MAX_SPECIFICATION_ITEM_CHARS),
                ("value", value, MAX_SPECIFICATION_VALUE_CHARS),
            ] {
                if text.is_empty() {
                    errors.add(format!("specifications[{i}].{name}"), "must not be empty");
                } else if text.chars().count() > max {
                    errors.add(
                        format!("specifications[{i}].{name}"),
                        format!("must be at most {max} characters"),
                    );
                } else if text.chars().any(char::is_control) {
                    errors.add(
                        format!("specifications[{i}].{name}"),
                        "must not contain control characters",
                    );
                }
            }
            specifications.push(SpecificationDraft {
                item: item.to_owned(),
                value: value.to_owned(),
            });
        }
        errors.is_empty().then(|| Self {
            title: title.to_owned(),
            price_cents: input.price_cents,
            rate: input.rate,
            description: input.description,
            cover: input.cover,
            detail: input.detail,
            specifications,
        })
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn price_cents(&self) -> i64 {
        self.price_cents
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn cover(&self) -> &str {
        &self.cover
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub fn specifications(&self) -> &[SpecificationDraft] {
        &self.specifications
    }
}

/// A replacement for product `id`'s fields and specifications.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductUpdate {
    pub id: ProductId,
    pub draft: ProductDraft,
}

impl ProductUpdate {
    /// Checks the id and every product field together.
    pub fn parse(id: i64, input: Option<UncheckedProduct>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let id = ProductId::collect("id", id, &mut errors);
        let draft = ProductDraft::collect_required(input, &mut errors);
        let update = id.zip(draft).map(|(id, draft)| Self { id, draft });
        errors.finish(update, "product")
    }
}

/// A saved product with its specifications in insertion order.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: ProductId,
    pub title: String,
    pub price_cents: i64,
    pub rate: f64,
    pub description: String,
    pub cover: String,
    pub detail: String,
    pub specifications: Vec<Specification>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specification {
    pub id: i64,
    pub item: String,
    pub value: String,
    pub product_id: ProductId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    pub id: i64,
    pub image: String,
    pub product_id: ProductId,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> UncheckedProduct {
        UncheckedProduct {
            title: "  Designing Data-Intensive Applications ".into(),
            price_cents: 0,
            rate: 10.0,
            description: "<p>x</p>".into(),
            cover: "/static/cover/ddia.jpg".into(),
            detail: "/static/desc/ddia.jpg".into(),
            specifications: vec![UncheckedSpecification {
                item: " Author ".into(),
                value: "Martin Kleppmann".into(),
            }],
        }
    }

    #[test]
    fn a_valid_product_is_trimmed_and_kept() {
        let draft = ProductDraft::parse(valid()).expect("valid");
        assert_eq!(draft.title(), "Designing Data-Intensive Applications");
        assert_eq!(draft.price_cents(), 0);
        assert_eq!(draft.rate(), 10.0);
        assert_eq!(draft.specifications()[0].item(), "Author");
        assert_eq!(draft.specifications()[0].value(), "Martin Kleppmann");
    }

    #[test]
    fn every_failed_field_is_listed_in_order() {
        let input = UncheckedProduct {
            title: "   ".into(),
            price_cents: -1,
            rate: 10.5,
            specifications: vec![
                UncheckedSpecification {
                    item: "ok".into(),
                    value: "ok".into(),
                },
                UncheckedSpecification {
                    item: "".into(),
                    value: " ".into(),
                },
            ],
            ..valid()
        };
        let errors = ProductDraft::parse(input).expect_err("invalid");
        assert_eq!(
            errors.to_string(),
            "title: must not be empty; price_cents: must not be negative; \
             rate: must be between 0 and 10; specifications[1].item: must not be empty; \
             specifications[1].value: must not be empty"
        );
    }

    #[test]
    fn title_length_counts_characters_not_bytes() {
        let fifty = "书".repeat(50);
        let ok = ProductDraft::parse(UncheckedProduct {
            title: fifty.clone(),
            ..valid()
        });
        assert!(ok.is_ok());
        let errors = ProductDraft::parse(UncheckedProduct {
            title: format!("{fifty}x"),
            ..valid()
        })
        .expect_err("too long");
        assert_eq!(
            errors.to_string(),
            "title: must be at most 50 characters (got 51)"
        );
    }

    #[test]
    fn control_characters_are_refused_where_no_text_needs_them() {
        let input = UncheckedProduct {
            title: "Line\nbreak".into(),
            description: "<p>multi\nline is fine</p>\0".into(),
            cover: "/static/cover/\0.jpg".into(),
            specifications: vec![UncheckedSpecification {
                item: "Tab\there".into(),
                value: "ok".into(),
            }],
            ..valid()
        };
        let errors = ProductDraft::parse(input).expect_err("invalid");
        assert_eq!(
            errors.to_string(),
            "title: must not contain control characters; \
             description: must not contain NUL characters; \
             cover: must not contain NUL characters; \
             specifications[0].item: must not contain control characters"
        );
        let multiline = UncheckedProduct {
            description: "<p>one</p>\n<p>two</p>".into(),
            ..valid()
        };
        assert!(ProductDraft::parse(multiline).is_ok());
    }

    #[test]
    fn rates_outside_the_range_and_nan_are_refused() {
        for rate in [-0.1, 10.01, f64::NAN, f64::INFINITY] {
            let errors =
                ProductDraft::parse(UncheckedProduct { rate, ..valid() }).expect_err("bad rate");
            assert_eq!(errors.iter().next().map(|e| e.field.as_str()), Some("rate"));
        }
    }

    #[test]
    fn an_update_lists_a_bad_id_together_with_bad_fields() {
        let errors = ProductUpdate::parse(
            0,
            Some(UncheckedProduct {
                price_cents: -5,
                ..valid()
            }),
        )
        .expect_err("invalid");
        assert_eq!(
            errors.to_string(),
            "id: must be a positive product id; price_cents: must not be negative"
        );
        let errors = ProductUpdate::parse(3, None).expect_err("missing product");
        assert_eq!(errors.to_string(), "product: is required");
        let update = ProductUpdate::parse(3, Some(valid())).expect("valid");
        assert_eq!(update.id.get(), 3);
    }

    #[test]
    fn product_ids_must_be_positive() {
        assert_eq!(ProductId::parse("id", 7).map(ProductId::get), Ok(7));
        for raw in [0, -1, i64::MIN] {
            let errors = ProductId::parse("id", raw).expect_err("not positive");
            assert_eq!(errors.to_string(), "id: must be a positive product id");
        }
    }
}
