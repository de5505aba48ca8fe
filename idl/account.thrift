// The account service: the bookstore's users, their credentials and roles.
//
// Transport: the server keeps Volo's default codec, which auto-detects TTHeader (Kitex/Volo
// clients), framed and unframed (buffered) transports, and binary or compact protocols, so stock
// Apache Thrift clients can call it as well.
//
// Authorization: a caller proves who it is with a JWT issued by the gateway's token endpoint,
// carried either in TTHeader metainfo under the key "authorization" (a Volo client's transient
// value; Kitex sends it as "RPC_TRANSIT_authorization" or "RPC_PERSIST_authorization"), or in
// the request's `token` field (field 100), which any stock Thrift client can set. The value is
// "Bearer <jwt>" or the bare JWT; a token that cannot be read or verified is refused with
// Unauthenticated, never taken as anonymous.
// Ping and CreateAccount are public; reads and updates need the account's owner or ROLE_ADMIN;
// CheckCredentials needs a token with scope SERVICE (only the gateway calls it).
//
// Password material: passwords are opaque strings (the web front-end pre-hashes them). The
// service stores only a slow salted hash and never returns it.
namespace rs account

// A user of the bookstore as everyone but the account service sees it (no password hash).
struct Account {
    // Surrogate key, assigned on creation.
    1: required i64 id,
    // Unique, lower-cased; letters, digits and `_.-`, at most 50 characters.
    2: required string username,
    // Display name; never empty.
    3: required string name,
    // Avatar image URL or path; may be empty.
    4: required string avatar,
    // "1" followed by 10 digits, or empty. Unique when present.
    5: required string telephone,
    // An e-mail address, or empty. Unique when present.
    6: required string email,
    // Free-form delivery location; may be empty.
    7: required string location,
    // Roles granted to the account, e.g. ["ROLE_USER"] or ["ROLE_USER", "ROLE_ADMIN"].
    8: required list<string> roles,
}

// One failed validation rule.
struct FieldError {
    // The request field that failed, in the REST API's lowerCamelCase (e.g. "telephone").
    1: required string field,
    // Why it failed, readable by a person.
    2: required string message,
}

// The requested account does not exist.
exception NotFound {
    1: required string message,
}

// The request failed validation. `errors` lists every failed rule, not just the first.
exception InvalidInput {
    1: required string message,
    2: required list<FieldError> errors,
}

// A uniqueness rule was violated. `field` names the clashing field: "username", "email" or
// "telephone".
exception Conflict {
    1: required string message,
    2: required string field,
}

// The username/password pair is wrong. The same exception, with the same message, is raised for
// an unknown user and for a wrong password, so callers cannot tell which usernames exist.
exception BadCredentials {
    1: required string message,
}

// No token, or one that is malformed, forged or expired, on a method that needs one.
exception Unauthenticated {
    1: required string message,
}

// The caller is authenticated but may not do this (not the owner, not an admin, wrong scope).
exception PermissionDenied {
    1: required string message,
}

// More password hashing is waiting than the service takes, or its database is unavailable
// (busy, out of connections, unreachable); nothing was done. Try again shortly (the gateway
// answers 503 with Retry-After).
exception Overloaded {
    1: required string message,
}

struct PingRequest {}

struct PingResponse {
    // "SERVING" while the service accepts requests, "NOT_SERVING" once it is shutting down.
    1: required string status,
}

struct GetAccountByUsernameRequest {
    // Matched case-insensitively.
    1: required string username,
    // The caller's access token (a JWT, `Bearer ` optional), for Thrift clients that cannot
    // set TTHeader metainfo (any stock Apache Thrift library). When the TTHeader carries one
    // too, both must be the same token.
    100: optional string token,
}

struct GetAccountByIdRequest {
    1: required i64 id,
    // The caller's access token (a JWT, `Bearer ` optional), for Thrift clients that cannot
    // set TTHeader metainfo (any stock Apache Thrift library). When the TTHeader carries one
    // too, both must be the same token.
    100: optional string token,
}

struct CreateAccountRequest {
    1: required string username,
    // Opaque; stored only as a slow salted hash. Must not be empty.
    2: required string password,
    3: required string name,
    4: optional string avatar,
    5: optional string telephone,
    6: optional string email,
    7: optional string location,
}

// Replaces the profile fields of account `id`. The username cannot change.
struct UpdateAccountRequest {
    1: required i64 id,
    2: required string name,
    3: optional string avatar,
    4: optional string telephone,
    5: optional string email,
    6: optional string location,
    // When present and non-empty, becomes the new password; when absent or empty, the old
    // password is kept.
    7: optional string password,
    // The caller's access token (a JWT, `Bearer ` optional), for Thrift clients that cannot
    // set TTHeader metainfo (any stock Apache Thrift library). When the TTHeader carries one
    // too, both must be the same token.
    100: optional string token,
}

struct CheckCredentialsRequest {
    // Matched case-insensitively.
    1: required string username,
    2: required string password,
    // The caller's access token (a JWT, `Bearer ` optional), for Thrift clients that cannot
    // set TTHeader metainfo (any stock Apache Thrift library). When the TTHeader carries one
    // too, both must be the same token.
    100: optional string token,
}

service AccountService {
    // Liveness and readiness of the service. Public.
    PingResponse Ping(1: PingRequest req),

    // One account by username. Owner or ROLE_ADMIN.
    Account GetAccountByUsername(1: GetAccountByUsernameRequest req)
        throws (1: NotFound not_found, 2: Unauthenticated unauthenticated, 3: PermissionDenied permission_denied, 4: InvalidInput invalid_input, 5: Overloaded overloaded),

    // One account by id. Owner or ROLE_ADMIN.
    Account GetAccountById(1: GetAccountByIdRequest req)
        throws (1: NotFound not_found, 2: Unauthenticated unauthenticated, 3: PermissionDenied permission_denied, 4: Overloaded overloaded),

    // Registers a new account with role ROLE_USER. Public.
    Account CreateAccount(1: CreateAccountRequest req)
        throws (1: InvalidInput invalid_input, 2: Conflict conflict, 3: Overloaded overloaded),

    // Updates an account's profile (and, optionally, its password). Owner or ROLE_ADMIN.
    Account UpdateAccount(1: UpdateAccountRequest req)
        throws (1: InvalidInput invalid_input, 2: Conflict conflict, 3: NotFound not_found, 4: Unauthenticated unauthenticated, 5: PermissionDenied permission_denied, 6: Overloaded overloaded),

    // Checks a username/password pair and returns the account with its roles. Scope SERVICE.
    // Takes about the same time whether the user exists or not.
    Account CheckCredentials(1: CheckCredentialsRequest req)
        throws (1: BadCredentials bad_credentials, 2: Unauthenticated unauthenticated, 3: PermissionDenied permission_denied, 4: Overloaded overloaded),
}
