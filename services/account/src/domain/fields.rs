//! The validated pieces of an account: usernames, telephone numbers, e-mail addresses,
//! passwords and roles. Each can only be built through a parser that enforces the REST
//! contract's rules (rest-api.md §3), so code holding one never re-checks it.

use std::fmt;

/// The longest username the contract allows, in characters.
pub const USERNAME_MAX_CHARS: usize = 50;

/// A username: 1 to 50 ASCII letters, digits, `_`, `.` or `-`, held lower-cased so that
/// comparisons and the database's unique constraint are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.chars().count() > USERNAME_MAX_CHARS {
            return Err(format!("must be at most {USERNAME_MAX_CHARS} characters"));
        }
        // ASCII only: lower-casing other scripts is locale-dependent and could make two distinct
        // spellings collide (or the same one differ) between SQLite and PostgreSQL.
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("may contain only letters, digits, '_', '.' and '-'".into());
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest password that can be set (the front-end sends a fixed-length pre-hash).
pub const PASSWORD_MAX_CHARS: usize = 1_024;

/// A mobile number as the contract defines it: `1` followed by exactly 10 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telephone(String);

impl Telephone {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid =
            raw.len() == 11 && raw.starts_with('1') && raw.bytes().all(|b| b.is_ascii_digit());
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be 1 followed by 10 digits".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest address SMTP can carry (RFC 5321's 256-octet path, minus the angle brackets).
const EMAIL_MAX_LEN: usize = 254;

/// An e-mail address that is valid by the WHATWG HTML definition (what `<input type=email>`
/// accepts): `local@domain`, where the local part uses the RFC 5322 "atext" characters and dots,
/// and the domain is one or more dot-separated labels of letters, digits and inner hyphens, each
/// at most 63 characters. Stored as given; uniqueness ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let invalid = || "must be a valid e-mail address".to_owned();
        if raw.len() > EMAIL_MAX_LEN {
            return Err(format!("must be at most {EMAIL_MAX_LEN} characters"));
        }
        let (local, domain) = raw.split_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty() && local.bytes().all(is_email_local_byte);
        let domain_ok = !domain.is_empty() && domain.split('.').all(is_domain_label);
        if local_ok && domain_ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_email_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b)
}

fn is_domain_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// A password as the client sent it. The reference front-end pre-hashes it in the browser, so it
/// is an opaque string: no rules beyond "not empty" where one is being set.
///
/// Deliberately neither `Display` nor a revealing `Debug`, so it cannot end up in a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// A password being set (registration, change): not empty, at most
    /// [`PASSWORD_MAX_CHARS`] characters.
    pub fn new(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            Err("must not be empty".into())
        } else if raw.chars().count() > PASSWORD_MAX_CHARS {
            Err(format!("must be at most {PASSWORD_MAX_CHARS} characters"))
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    /// A password being checked: anything goes, a wrong one simply fails to verify.
    pub fn candidate(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What an account may do. Stored with the account, one row per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Every registered account.
    User,
    /// Manages the catalogue and may read and update any account.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => platform::tokens::ROLE_USER,
            Role::Admin => platform::tokens::ROLE_ADMIN,
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Role::User, Role::Admin]
            .into_iter()
            .find(|role| role.as_str() == raw)
    }
}

/// The fields that must be unique among accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    Username,
    Email,
    Telephone,
}

impl UniqueField {
    /// The field's name in the REST API (and in the Thrift `Conflict.field`).
    pub fn name(self) -> &'static str {
        match self {
            UniqueField::Username => "username",
            UniqueField::Email => "email",
            UniqueField::Telephone => "telephone",
        }
    }
}

pub use platform::validation::FieldErrors;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased_and_limited_to_fifty_safe_characters() {
        assert_eq!(
            Username::parse("Icy.Fenix_-9").unwrap().as_str(),
            "icy.fenix_-9"
        );
        assert!(Username::parse(&"a".repeat(50)).is_ok());
        assert!(Username::parse(&"a".repeat(51)).is_err());
        for bad in ["", "a b", "a/b", "ünï", "a@b", "tab\t", "a\u{0}"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn telephones_are_one_and_ten_digits() {
        assert!(Telephone::parse("18888888888").is_ok());
        for bad in [
            "",
            "28888888888",
            "1888888888",
            "188888888888",
            "1888888888a",
            "+1888888888",
            "１8888888888",
        ] {
            assert!(Telephone::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_follow_the_html_definition() {
        for good in [
            "a@b",
            "icyfenix@gmail.com",
            "x.y+tag@sub.example-host.org",
            "o'neil@example.com",
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@-b.com",
            "a@b-.com",
            "a@.b.com",
            "a@b.com.",
            "ü@b.com",
            "a@exa_mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let long_label = format!("a@{}.com", "b".repeat(64));
        assert!(Email::parse(&long_label).is_err());
        let too_long = format!("{}@b.com", "a".repeat(250));
        assert!(Email::parse(&too_long).is_err());
    }

    #[test]
    fn passwords_being_set_must_not_be_empty_and_never_print() {
        assert!(Password::new("").is_err());
        let password = Password::new("s3cret").unwrap();
        assert!(!format!("{password:?}").contains("s3cret"));
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("ROLE_ROOT"), None);
    }
}
