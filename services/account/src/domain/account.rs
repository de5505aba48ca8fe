//! Accounts as the rest of the system sees them, and the validated requests that create and
//! change them.

use super::fields::{Email, FieldErrors, Password, Role, Telephone, Username};

/// The longest display name, avatar URL and address, in characters: generous for people and
/// links, and a bound on what one request can make the service store.
pub const NAME_MAX_CHARS: usize = 100;
pub const AVATAR_MAX_CHARS: usize = 2_048;
pub const LOCATION_MAX_CHARS: usize = 500;

/// An account without its password hash: the only shape that ever leaves the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub username: Username,
    pub name: String,
    pub avatar: Option<String>,
    pub telephone: Option<String>,
    pub email: Option<String>,
    pub location: Option<String>,
    /// Sorted, without duplicates.
    pub roles: Vec<Role>,
}

/// A registration as received, before any rule is checked. Optional text fields that are absent
/// or empty mean "not given".
#[derive(Debug, Clone, Default)]
pub struct RegistrationInput {
    pub username: String,
    pub password: String,
    pub name: String,
    pub avatar: Option<String>,
    pub telephone: Option<String>,
    pub email: Option<String>,
    pub location: Option<String>,
}

/// The profile fields both writes share, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub avatar: Option<String>,
    pub telephone: Option<Telephone>,
    pub email: Option<Email>,
    pub location: Option<String>,
}

/// A registration that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub username: Username,
    pub password: Password,
    pub profile: Profile,
}

impl NewAccount {
    /// Checks every rule and reports all that failed.
    pub fn parse(input: RegistrationInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let username = errors.check("username", Username::parse(&input.username));
        let password = errors.check("password", Password::new(&input.password));
        let profile = parse_profile(
            &mut errors,
            ProfileInput {
                name: input.name,
                avatar: input.avatar,
                telephone: input.telephone,
                email: input.email,
                location: input.location,
            },
        );
        match (username, password, profile) {
            (Some(username), Some(password), Some(profile)) if errors.is_empty() => Ok(Self {
                username,
                password,
                profile,
            }),
            _ => Err(errors),
        }
    }
}

/// A profile update as received (the username cannot change).
#[derive(Debug, Clone, Default)]
pub struct UpdateInput {
    pub name: String,
    pub avatar: Option<String>,
    pub telephone: Option<String>,
    pub email: Option<String>,
    pub location: Option<String>,
    pub password: Option<String>,
}

/// A profile update that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUpdate {
    pub profile: Profile,
    /// `None` keeps the current password.
    pub new_password: Option<Password>,
}

impl ProfileUpdate {
    pub fn parse(input: UpdateInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let profile = parse_profile(
            &mut errors,
            ProfileInput {
                name: input.name,
                avatar: input.avatar,
                telephone: input.telephone,
                email: input.email,
                location: input.location,
            },
        );
        // An absent or empty password means "keep the current one" (rest-api.md §3).
        let new_password = given(input.password).and_then(|p| Password::new(&p).ok());
        match profile {
            Some(profile) if errors.is_empty() => Ok(Self {
                profile,
                new_password,
            }),
            _ => Err(errors),
        }
    }
}

struct ProfileInput {
    name: String,
    avatar: Option<String>,
    telephone: Option<String>,
    email: Option<String>,
    location: Option<String>,
}

fn parse_profile(errors: &mut FieldErrors, input: ProfileInput) -> Option<Profile> {
    let name = errors.check("name", parse_name(input.name));
    let telephone = errors.check(
        "telephone",
        given(input.telephone)
            .map(|t| Telephone::parse(&t))
            .transpose(),
    );
    let email = errors.check(
        "email",
        given(input.email).map(|e| Email::parse(&e)).transpose(),
    );
    let avatar = errors.check("avatar", at_most(given(input.avatar), AVATAR_MAX_CHARS));
    let location = errors.check(
        "location",
        at_most(given(input.location), LOCATION_MAX_CHARS),
    );
    Some(Profile {
        name: name?,
        avatar: avatar?,
        telephone: telephone?,
        email: email?,
        location: location?,
    })
}

/// An optional free-text field of at most `max` characters.
fn at_most(value: Option<String>, max: usize) -> Result<Option<String>, String> {
    match value {
        Some(text) if text.chars().count() > max => {
            Err(format!("must be at most {max} characters"))
        }
        other => Ok(other),
    }
}

fn parse_name(name: String) -> Result<String, String> {
    // A name of only spaces is as empty as no name at all on an order or an invoice.
    if name.trim().is_empty() {
        Err("must not be empty".into())
    } else if name.chars().count() > NAME_MAX_CHARS {
        Err(format!("must be at most {NAME_MAX_CHARS} characters"))
    } else {
        Ok(name)
    }
}

/// Absent and empty optional fields are the same thing: "not given". Storing both as NULL keeps
/// two accounts without an e-mail address from clashing on the unique constraint.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration() -> RegistrationInput {
        RegistrationInput {
            username: "Alice".into(),
            password: "pw".into(),
            name: "Alice".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_registration_lists_every_broken_rule() {
        let errors = NewAccount::parse(RegistrationInput {
            username: "a b".into(),
            password: String::new(),
            name: " ".into(),
            telephone: Some("123".into()),
            email: Some("nope".into()),
            ..Default::default()
        })
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["username", "password", "name", "telephone", "email"]
        );
    }

    #[test]
    fn free_text_fields_are_bounded() {
        let errors = NewAccount::parse(RegistrationInput {
            name: "n".repeat(NAME_MAX_CHARS + 1),
            avatar: Some("a".repeat(AVATAR_MAX_CHARS + 1)),
            location: Some("l".repeat(LOCATION_MAX_CHARS + 1)),
            password: "p".repeat(super::super::fields::PASSWORD_MAX_CHARS + 1),
            ..registration()
        })
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["password", "name", "avatar", "location"]);
        let at_the_limit = NewAccount::parse(RegistrationInput {
            name: "n".repeat(NAME_MAX_CHARS),
            avatar: Some("a".repeat(AVATAR_MAX_CHARS)),
            location: Some("l".repeat(LOCATION_MAX_CHARS)),
            ..registration()
        });
        assert!(at_the_limit.is_ok());
    }

    #[test]
    fn empty_optional_fields_are_absent() {
        let account = NewAccount::parse(RegistrationInput {
            avatar: Some(String::new()),
            telephone: Some(String::new()),
            email: Some(String::new()),
            location: Some(String::new()),
            ..registration()
        })
        .unwrap();
        assert_eq!(account.username.as_str(), "alice");
        assert_eq!(
            account.profile,
            Profile {
                name: "Alice".into(),
                avatar: None,
                telephone: None,
                email: None,
                location: None,
            }
        );
    }

    #[test]
    fn an_update_keeps_the_password_unless_a_non_empty_one_is_given() {
        let base = UpdateInput {
            name: "A".into(),
            ..Default::default()
        };
        let keep = ProfileUpdate::parse(base.clone()).unwrap();
        assert!(keep.new_password.is_none());
        let keep = ProfileUpdate::parse(UpdateInput {
            password: Some(String::new()),
            ..base.clone()
        })
        .unwrap();
        assert!(keep.new_password.is_none());
        let change = ProfileUpdate::parse(UpdateInput {
            password: Some("new".into()),
            ..base
        })
        .unwrap();
        assert_eq!(change.new_password, Some(Password::new("new").unwrap()));
    }
}
