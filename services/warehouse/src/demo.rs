//! The demo catalogue loaded into an empty database when `[seed] demo_data` is on: enough books,
//! specifications, stock and advertisements for the front-end to show a real-looking shop.
//!
//! Image paths point into the gateway's static directory (`/static/cover/…` covers,
//! `/static/desc/…` detail pictures, `/static/carousel/…` advertisement banners).

use crate::domain::{FieldErrors, ProductDraft, UncheckedProduct, UncheckedSpecification};

/// One book of the demo catalogue and the stock it starts with.
pub struct DemoBook {
    pub title: &'static str,
    pub price_cents: i64,
    pub rate: f64,
    pub description: &'static str,
    pub cover: &'static str,
    pub detail: &'static str,
    pub specifications: &'static [(&'static str, &'static str)],
    pub stock: i64,
}

/// A carousel banner advertising one of [`BOOKS`] (by index).
pub struct DemoAdvertisement {
    pub image: &'static str,
    pub book: usize,
}

pub const BOOKS: &[DemoBook] = &[
    DemoBook {
        title: "Designing Data-Intensive Applications",
        price_cents: 8990,
        rate: 9.7,
        description: "<p>How replication, partitioning, transactions and stream processing \
            really work, and what each choice costs when a system has to stay correct under \
            load and failure.</p><p>A map of the ideas behind the databases and queues that \
            modern services are built on.</p>",
        cover: "/static/cover/ddia.jpg",
        detail: "/static/desc/ddia.jpg",
        specifications: &[
            ("Author", "Martin Kleppmann"),
            ("Publisher", "O'Reilly Media"),
            ("Published", "2017-03"),
            ("ISBN", "9781449373320"),
            ("Binding", "Paperback"),
        ],
        stock: 60,
    },
    DemoBook {
        title: "The Rust Programming Language, 2nd Edition",
        price_cents: 4995,
        rate: 9.4,
        description: "<p>The language's own introduction: ownership and borrowing, traits and \
            generics, error handling, concurrency without data races, and a small web server \
            built from scratch at the end.</p>",
        cover: "/static/cover/trpl.jpg",
        detail: "/static/desc/trpl.jpg",
        specifications: &[
            ("Authors", "Steve Klabnik, Carol Nichols"),
            ("Publisher", "No Starch Press"),
            ("Published", "2023-02"),
            ("ISBN", "9781718503106"),
            ("Binding", "Paperback"),
        ],
        stock: 80,
    },
    DemoBook {
        title: "Rust for Rustaceans",
        price_cents: 3999,
        rate: 9.2,
        description: "<p>For readers who already write Rust and want to know why it works: \
            memory layout, variance, API design, unsafe code, asynchronous runtimes and \
            testing beyond the basics.</p>",
        cover: "/static/cover/rust-for-rustaceans.jpg",
        detail: "/static/desc/rust-for-rustaceans.jpg",
        specifications: &[
            ("Author", "Jon Gjengset"),
            ("Publisher", "No Starch Press"),
            ("Published", "2021-12"),
            ("ISBN", "9781718501850"),
            ("Binding", "Paperback"),
        ],
        stock: 45,
    },
    DemoBook {
        title: "Site Reliability Engineering",
        price_cents: 6350,
        rate: 8.8,
        description: "<p>How one very large operations organisation runs production: error \
            budgets, service level objectives, on-call, postmortems without blame, and the \
            engineering that keeps toil down.</p>",
        cover: "/static/cover/sre.jpg",
        detail: "/static/desc/sre.jpg",
        specifications: &[
            (
                "Editors",
                "Betsy Beyer, Chris Jones, Jennifer Petoff, Niall Richard Murphy",
            ),
            ("Publisher", "O'Reilly Media"),
            ("Published", "2016-04"),
            ("ISBN", "9781491929124"),
            ("Binding", "Paperback"),
        ],
        stock: 30,
    },
    DemoBook {
        title: "Database Internals",
        price_cents: 5499,
        rate: 8.9,
        description: "<p>Inside a storage engine and a distributed database: B-trees and \
            log-structured merge trees, buffer management, recovery, failure detection, leader \
            election and consensus.</p>",
        cover: "/static/cover/database-internals.jpg",
        detail: "/static/desc/database-internals.jpg",
        specifications: &[
            ("Author", "Alex Petrov"),
            ("Publisher", "O'Reilly Media"),
            ("Published", "2019-10"),
            ("ISBN", "9781492040347"),
            ("Binding", "Paperback"),
        ],
        stock: 25,
    },
    DemoBook {
        title: "Building Microservices, 2nd Edition",
        price_cents: 5950,
        rate: 8.6,
        description: "<p>When to split a system into services and when not to, how to draw \
            the boundaries, and what deployment, testing, observability and security look \
            like once there are many small programs instead of one.</p>",
        cover: "/static/cover/building-microservices.jpg",
        detail: "/static/desc/building-microservices.jpg",
        specifications: &[
            ("Author", "Sam Newman"),
            ("Publisher", "O'Reilly Media"),
            ("Published", "2021-08"),
            ("ISBN", "9781492034025"),
            ("Binding", "Paperback"),
        ],
        stock: 40,
    },
    DemoBook {
        title: "Programming Rust, 2nd Edition",
        price_cents: 6999,
        rate: 9.1,
        description: "<p>A systems programmer's tour of Rust, from the type system and \
            ownership to closures, iterators, collections, concurrency, asynchronous code and \
            the foreign function interface.</p>",
        cover: "/static/cover/programming-rust.jpg",
        detail: "/static/desc/programming-rust.jpg",
        specifications: &[
            (
                "Authors",
                "Jim Blandy, Jason Orendorff, Leonora F. S. Tindall",
            ),
            ("Publisher", "O'Reilly Media"),
            ("Published", "2021-06"),
            ("ISBN", "9781492052593"),
            ("Binding", "Paperback"),
        ],
        stock: 35,
    },
    DemoBook {
        title: "Release It!, 2nd Edition",
        price_cents: 4750,
        rate: 9.0,
        description: "<p>Stories of production outages and the patterns that prevent them: \
            timeouts, circuit breakers, bulkheads, back pressure, and designing for the day \
            everything goes wrong at once.</p>",
        cover: "/static/cover/release-it.jpg",
        detail: "/static/desc/release-it.jpg",
        specifications: &[
            ("Author", "Michael T. Nygard"),
            ("Publisher", "The Pragmatic Bookshelf"),
            ("Published", "2018-01"),
            ("ISBN", "9781680502398"),
            ("Binding", "Paperback"),
        ],
        stock: 50,
    },
    DemoBook {
        // Free to read online; a price of 0 keeps the front-end's price formatting honest.
        title: "The Architecture of Open Source Applications",
        price_cents: 0,
        rate: 8.2,
        description: "<p>The people who built well-known open source programs explain how they \
            are put together and why, one chapter per program.</p>",
        cover: "/static/cover/aosa.jpg",
        detail: "/static/desc/aosa.jpg",
        specifications: &[
            ("Editors", "Amy Brown, Greg Wilson"),
            ("Publisher", "lulu.com"),
            ("Published", "2011-06"),
            ("Licence", "CC BY 3.0"),
        ],
        stock: 100,
    },
];

pub const ADVERTISEMENTS: &[DemoAdvertisement] = &[
    DemoAdvertisement {
        image: "/static/carousel/ddia.png",
        book: 0,
    },
    DemoAdvertisement {
        image: "/static/carousel/rust.png",
        book: 1,
    },
    DemoAdvertisement {
        image: "/static/carousel/sre.png",
        book: 3,
    },
];

impl DemoBook {
    /// The book as a product the store can save; the demo data passes the same checks as any
    /// administrator's input.
    pub fn draft(&self) -> Result<ProductDraft, FieldErrors> {
        ProductDraft::parse(UncheckedProduct {
            title: self.title.into(),
            price_cents: self.price_cents,
            rate: self.rate,
            description: self.description.into(),
            cover: self.cover.into(),
            detail: self.detail.into(),
            specifications: self
                .specifications
                .iter()
                .map(|(item, value)| UncheckedSpecification {
                    item: (*item).into(),
                    value: (*value).into(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_book_is_a_valid_product_with_images_and_stock() {
        assert!(BOOKS.len() >= 8);
        for book in BOOKS {
            let draft = book
                .draft()
                .unwrap_or_else(|e| panic!("{}: {e}", book.title));
            assert!(!draft.specifications().is_empty(), "{}", book.title);
            assert!(book.cover.starts_with("/static/cover/"), "{}", book.title);
            assert!(book.detail.starts_with("/static/desc/"), "{}", book.title);
            assert!(book.stock > 0, "{}", book.title);
        }
    }

    #[test]
    fn three_advertisements_point_at_demo_books() {
        assert_eq!(ADVERTISEMENTS.len(), 3);
        for ad in ADVERTISEMENTS {
            assert!(ad.book < BOOKS.len());
            assert!(ad.image.starts_with("/static/carousel/"));
        }
    }
}
