//! The bookstore's own web front-end at `/`, and the demo catalogue's pictures under
//! `/static/{cover,desc,carousel}/…`.
//!
//! The front-end's files (`gateway/storefront/`: HTML, CSS and JavaScript modules, no build
//! step) are compiled into the binary, so the run command needs no Node, no npm and no network.
//! It talks to the public REST API and `/oauth/token` only, like any other client. When
//! `[static_files] dir` is configured (the Fenix bundle, say), that directory is served instead,
//! and only the pictures it lacks come from here ([`art`]).
//!
//! Every answer carries a strong `ETag` (a hash of its bytes) and a `Cache-Control`: the
//! front-end's files are revalidated on each load (`no-cache`: unchanged files cost a 304), the
//! pictures are kept for a day.

mod art;

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hasher},
    sync::Arc,
};

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use include_dir::{Dir, include_dir};

static FILES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/storefront");

/// The front-end may load only its own files and call only its own origin.
const STOREFRONT_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
/// A picture is a picture: nothing in it may run or load anything.
const PICTURE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'";
const REVALIDATE: &str = "no-cache";
const ONE_DAY: &str = "public, max-age=86400";

/// One file ready to send.
#[derive(Clone)]
struct Asset {
    body: Bytes,
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(body: Bytes, content_type: &'static str) -> Self {
        let mut hasher = DefaultHasher::new();
        hasher.write(&body);
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Self {
            body,
            content_type,
            etag,
        }
    }

    /// 200 with the body, or 304 when the client already holds this version; HEAD gets the
    /// headers only.
    fn respond(&self, method: &Method, request: &HeaderMap, cache: &'static str) -> Response {
        let fresh = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|list| list.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/").as_bytes() == self.etag.as_bytes()
            });
        let (status, body) = match (fresh, method == Method::HEAD) {
            (true, _) => (StatusCode::NOT_MODIFIED, Body::empty()),
            (false, true) => (StatusCode::OK, Body::empty()),
            (false, false) => (StatusCode::OK, Body::from(self.body.clone())),
        };
        let policy = if self.content_type.starts_with("image/") {
            PICTURE_POLICY
        } else {
            STOREFRONT_POLICY
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if status == StatusCode::OK {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        response
    }
}

/// The embedded front-end and the known pictures, hashed once at start.
#[derive(Clone)]
pub struct Storefront {
    files: Arc<HashMap<String, Asset>>,
}

impl Default for Storefront {
    fn default() -> Self {
        Self::new()
    }
}

impl Storefront {
    pub fn new() -> Self {
        let mut files = HashMap::new();
        let mut pending = vec![&FILES];
        while let Some(dir) = pending.pop() {
            for entry in dir.entries() {
                if let Some(sub) = entry.as_dir() {
                    pending.push(sub);
                } else if let Some(file) = entry.as_file() {
                    let path = file.path().to_string_lossy().replace('\\', "/");
                    let asset =
                        Asset::new(Bytes::from_static(file.contents()), content_type(&path));
                    files.insert(format!("/{path}"), asset);
                }
            }
        }
        Self {
            files: Arc::new(files),
        }
    }

    /// Answers a request for the front-end (`/`, its files) or a picture.
    pub fn serve(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
        if method != Method::GET && method != Method::HEAD {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        let path = match uri.path() {
            "/" => "/index.html",
            path => path,
        };
        match self.files.get(path) {
            Some(asset) => asset.respond(method, headers, REVALIDATE),
            None => picture(method, uri, headers),
        }
    }
}

/// Answers `/static/{cover,desc,carousel}/<name>` with its picture; anything else is 404.
pub fn picture(method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let drawn = uri
        .path()
        .strip_prefix("/static/")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(dir, file)| art::draw(art::Kind::from_dir(dir)?, file));
    match drawn {
        Some(svg) => {
            Asset::new(Bytes::from(svg), "image/svg+xml").respond(method, headers, ONE_DAY)
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}
