//! Who may do what with an account, given the caller's verified token.
//!
//! Registration is public and needs no rule here. The rest:
//! - reading and updating: the account's owner or an administrator (the gateway, refreshing a
//!   token, reads the account with a short-lived token of its owner);
//! - checking credentials: only a service (scope `SERVICE`: the gateway's token endpoint). A
//!   service token grants nothing else here.

use platform::tokens::{Caller, SCOPE_SERVICE};

use super::account::Account;

/// The owner is the user the token was issued to. Usernames never change, so the name identifies
/// the account; when the token also carries the account id, that must agree too.
pub fn owns(caller: &Caller, account: &Account) -> bool {
    caller.is_user(account.username.as_str()) && caller.account_id.is_none_or(|id| id == account.id)
}

pub fn may_read(caller: &Caller, account: &Account) -> bool {
    may_read_any(caller) || owns(caller, account)
}

/// May read accounts other than its own, and so may learn that an account does not exist.
pub fn may_read_any(caller: &Caller) -> bool {
    caller.is_admin()
}

pub fn may_update(caller: &Caller, account: &Account) -> bool {
    may_update_any(caller) || owns(caller, account)
}

/// May update accounts other than its own, and so may learn that an account does not exist.
pub fn may_update_any(caller: &Caller) -> bool {
    caller.is_admin()
}

pub fn may_check_credentials(caller: &Caller) -> bool {
    caller.has_scope(SCOPE_SERVICE)
}

#[cfg(test)]
mod tests {
    use platform::tokens::{ROLE_ADMIN, ROLE_USER, SCOPE_BROWSER};

    use super::*;
    use crate::domain::{Role, Username};

    fn account() -> Account {
        Account {
            id: 7,
            username: Username::parse("alice").unwrap(),
            name: "Alice".into(),
            avatar: None,
            telephone: None,
            email: None,
            location: None,
            roles: vec![Role::User],
        }
    }

    fn caller(username: Option<&str>, id: Option<i64>, roles: &[&str], scope: &str) -> Caller {
        Caller {
            username: username.map(str::to_owned),
            account_id: id,
            authorities: roles.iter().map(|r| r.to_string()).collect(),
            scopes: vec![scope.to_owned()],
            client_id: "test".into(),
        }
    }

    #[test]
    fn owners_and_admins_may_read_and_update_others_may_not() {
        let account = account();
        let owner = caller(Some("Alice"), Some(7), &[ROLE_USER], SCOPE_BROWSER);
        let owner_without_id = caller(Some("alice"), None, &[ROLE_USER], SCOPE_BROWSER);
        let impostor = caller(Some("alice"), Some(8), &[ROLE_USER], SCOPE_BROWSER);
        let other = caller(Some("bob"), Some(8), &[ROLE_USER], SCOPE_BROWSER);
        let admin = caller(
            Some("root"),
            Some(1),
            &[ROLE_USER, ROLE_ADMIN],
            SCOPE_BROWSER,
        );
        let service = caller(None, None, &[], SCOPE_SERVICE);

        assert!(may_read(&owner, &account) && may_update(&owner, &account));
        assert!(may_read(&owner_without_id, &account));
        assert!(!may_read(&impostor, &account) && !may_update(&impostor, &account));
        assert!(!may_read(&other, &account) && !may_update(&other, &account));
        assert!(may_read(&admin, &account) && may_update(&admin, &account));
        assert!(!may_read(&service, &account) && !may_update(&service, &account));

        assert!(may_check_credentials(&service));
        assert!(!may_check_credentials(&admin) && !may_check_credentials(&owner));
    }
}
