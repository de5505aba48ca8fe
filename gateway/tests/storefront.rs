//! The gateway's own storefront and the demo catalogue's pictures: `/` serves the storefront
//! compiled into the binary unless a static directory is configured (which then wins, and gets
//! only the pictures it lacks from the gateway); every picture the catalogue names resolves as
//! an image, with a validator and a cache lifetime; unchanged files cost a 304.

mod common;

use common::*;
use http::Method;

#[tokio::test]
async fn without_a_static_directory_the_storefront_is_served_at_the_root() {
    let stack = Stack::start().await;
    let http = &stack.http;

    let index = http.get("/", None).await.expect(200);
    assert!(index.header("content-type").starts_with("text/html"));
    assert!(
        index
            .text()
            .contains("<script type=\"module\" src=\"/js/main.js\">")
    );
    assert_eq!(index.header("cache-control"), "no-cache");
    assert!(
        index
            .header("content-security-policy")
            .contains("default-src 'self'")
    );
    let etag = index.header("etag").to_owned();
    assert!(etag.starts_with('"'), "{etag}");
    let unchanged = http
        .send(Method::GET, "/", None, &[("if-none-match", &etag)], None)
        .await
        .expect(304);
    assert!(unchanged.body.is_empty());

    let script = http.get("/js/main.js", None).await.expect(200);
    assert!(script.header("content-type").starts_with("text/javascript"));
    let style = http.get("/css/store.css", None).await.expect(200);
    assert!(style.header("content-type").starts_with("text/css"));
    http.get("/js/missing.js", None).await.expect(404);
    http.send(Method::POST, "/index.html", None, &[], None)
        .await
        .expect(405);
    // The API is never shadowed by the storefront.
    http.get("/restful/nothing-here", None).await.expect(404);
    stack.shut_down().await;
}

#[tokio::test]
async fn every_picture_the_catalogue_names_is_an_image_drawn_for_its_book() {
    let stack = Stack::start().await;
    let http = &stack.http;
    let products = http.get("/restful/products", None).await.expect(200).json();
    let advertisements = http
        .get("/restful/advertisements", None)
        .await
        .expect(200)
        .json();
    let mut paths: Vec<String> = Vec::new();
    for product in products.as_array().expect("a list") {
        paths.push(product["cover"].as_str().expect("cover").into());
        paths.push(product["detail"].as_str().expect("detail").into());
    }
    for ad in advertisements.as_array().expect("a list") {
        paths.push(ad["image"].as_str().expect("image").into());
    }
    assert!(paths.len() >= 20, "{paths:?}");
    for path in &paths {
        let picture = http.get(path, None).await.expect(200);
        assert_eq!(picture.header("content-type"), "image/svg+xml", "{path}");
        assert!(
            picture.header("cache-control").contains("max-age"),
            "{path}"
        );
        assert!(!picture.header("etag").is_empty(), "{path}");
        let svg = picture.text();
        assert!(svg.starts_with("<svg"), "{path}");
        // Drawn for its book: not the placeholder an unknown name gets.
        assert!(
            !svg.contains("Fenix's Bookstore"),
            "{path} has no art of its own"
        );
    }
    let placeholder = http
        .get("/static/cover/a-new-book.jpg", None)
        .await
        .expect(200);
    assert!(placeholder.text().contains("A New Book"));
    http.get("/static/cover/..%2Fsecret", None)
        .await
        .expect(404);
    http.get("/static/elsewhere/x.jpg", None).await.expect(404);
    stack.shut_down().await;
}

#[tokio::test]
async fn a_configured_static_directory_wins_and_gets_the_pictures_it_lacks() {
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        site.path().join("index.html"),
        "<html>the other front-end</html>",
    )
    .expect("index");
    std::fs::create_dir_all(site.path().join("static/cover")).expect("dir");
    std::fs::write(site.path().join("static/cover/ddia.jpg"), b"\xff\xd8\xff").expect("jpeg");
    let root = site.path().to_path_buf();
    let stack = Stack::start_with(move |config| config.static_files.dir = Some(root)).await;
    let http = &stack.http;

    assert!(
        http.get("/", None)
            .await
            .expect(200)
            .text()
            .contains("the other front-end")
    );
    http.get("/js/main.js", None).await.expect(404);
    let own = http.get("/static/cover/ddia.jpg", None).await.expect(200);
    assert_eq!(own.header("content-type"), "image/jpeg");
    let drawn = http.get("/static/cover/sre.jpg", None).await.expect(200);
    assert_eq!(drawn.header("content-type"), "image/svg+xml");
    stack.shut_down().await;
}
