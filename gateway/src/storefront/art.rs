//! The demo catalogue's pictures, drawn by this program: SVG made from a title, an author and
//! a colour, so the shop has covers, detail pictures and carousel banners without anybody's
//! cover scans.
//!
//! The catalogue names its images by path (`/static/cover/ddia.jpg`, `/static/desc/ddia.jpg`,
//! `/static/carousel/ddia.png`); what is drawn for a path depends only on the picture's kind and
//! the file name's stem, whatever its extension says. A stem this table does not know (a
//! product an administrator created with a cover of their own naming) gets a placeholder drawn
//! from the stem itself, so no product shows a broken image.

use std::fmt::Write;

/// What a picture is for; the first part of its path under `/static/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A book cover, 3:4.
    Cover,
    /// The detail page's picture, 16:10.
    Detail,
    /// An advertisement banner, 3:1.
    Carousel,
}

impl Kind {
    pub fn from_dir(dir: &str) -> Option<Self> {
        match dir {
            "cover" => Some(Self::Cover),
            "desc" => Some(Self::Detail),
            "carousel" => Some(Self::Carousel),
            _ => None,
        }
    }
}

/// A book the demo catalogue shows, by the stem of its image files.
struct Book {
    stem: &'static str,
    title: &'static str,
    byline: &'static str,
    /// Hue (0–360) of the cover's colour.
    hue: u16,
    /// A banner's line under the title.
    tagline: &'static str,
}

/// Every stem the demo catalogue (`services/warehouse/src/demo.rs`) names; a test in
/// `gateway/tests/storefront.rs` checks that none is missing.
const BOOKS: &[Book] = &[
    Book {
        stem: "ddia",
        title: "Designing Data-Intensive Applications",
        byline: "Martin Kleppmann",
        hue: 8,
        tagline: "The ideas behind reliable, scalable, maintainable systems",
    },
    Book {
        stem: "trpl",
        title: "The Rust Programming Language",
        byline: "Steve Klabnik, Carol Nichols",
        hue: 24,
        tagline: "",
    },
    Book {
        stem: "rust",
        title: "Rust, from the first line to production",
        byline: "The Rust Programming Language",
        hue: 24,
        tagline: "Ownership, traits, fearless concurrency",
    },
    Book {
        stem: "rust-for-rustaceans",
        title: "Rust for Rustaceans",
        byline: "Jon Gjengset",
        hue: 200,
        tagline: "",
    },
    Book {
        stem: "sre",
        title: "Site Reliability Engineering",
        byline: "Beyer, Jones, Petoff, Murphy",
        hue: 150,
        tagline: "Error budgets, SLOs and blameless postmortems",
    },
    Book {
        stem: "database-internals",
        title: "Database Internals",
        byline: "Alex Petrov",
        hue: 265,
        tagline: "",
    },
    Book {
        stem: "building-microservices",
        title: "Building Microservices",
        byline: "Sam Newman",
        hue: 185,
        tagline: "",
    },
    Book {
        stem: "programming-rust",
        title: "Programming Rust",
        byline: "Blandy, Orendorff, Tindall",
        hue: 340,
        tagline: "",
    },
    Book {
        stem: "release-it",
        title: "Release It!",
        byline: "Michael T. Nygard",
        hue: 45,
        tagline: "",
    },
    Book {
        stem: "aosa",
        title: "The Architecture of Open Source Applications",
        byline: "Amy Brown, Greg Wilson (eds.)",
        hue: 100,
        tagline: "",
    },
];

/// The SVG for `kind` and the image file name `file` (`ddia.jpg`). `None` for a name that is
/// not a plain file name.
pub fn draw(kind: Kind, file: &str) -> Option<String> {
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let starts_plainly = stem.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !starts_plainly || file.len() > 100 || !file.chars().all(plain) {
        return None;
    }
    let placeholder_title;
    let book = match BOOKS.iter().find(|book| book.stem == stem) {
        Some(book) => Picture {
            title: book.title,
            byline: book.byline,
            hue: book.hue,
            tagline: book.tagline,
        },
        None => {
            placeholder_title = title_from_stem(stem);
            Picture {
                title: &placeholder_title,
                byline: "Fenix's Bookstore",
                hue: hue_from_stem(stem),
                tagline: "",
            }
        }
    };
    Some(match kind {
        Kind::Cover => cover(&book),
        Kind::Detail => detail(&book),
        Kind::Carousel => banner(&book),
    })
}

/// What one picture shows.
struct Picture<'a> {
    title: &'a str,
    byline: &'a str,
    hue: u16,
    tagline: &'a str,
}

/// A title made from a file name: `my-new_book` → "My New Book".
fn title_from_stem(stem: &str) -> String {
    let words: Vec<String> = (stem.split(['-', '_', '.']))
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    words.join(" ")
}

/// A colour of its own for each name.
fn hue_from_stem(stem: &str) -> u16 {
    let hash = (stem.bytes()).fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    u16::try_from(hash % 360).unwrap_or(0)
}

/// Escapes text for an SVG text node.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Breaks `text` into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

fn cover(book: &Picture<'_>) -> String {
    let (h, title) = (book.hue, book.title);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 400" width="300" height="400" role="img" aria-label="{label}">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl({h},62%,42%)"/><stop offset="1" stop-color="hsl({h2},58%,24%)"/></linearGradient></defs>
<rect width="300" height="400" fill="url(#g)"/>
<rect x="0" y="0" width="14" height="400" fill="hsl({h},40%,16%)" opacity=".55"/>
<circle cx="238" cy="318" r="92" fill="none" stroke="hsl({h},70%,78%)" stroke-opacity=".25" stroke-width="18"/>
<circle cx="238" cy="318" r="46" fill="hsl({h},70%,78%)" fill-opacity=".18"/>
<rect x="34" y="40" width="232" height="2" fill="#fff" opacity=".7"/>
"##,
        label = escape(title),
        h2 = (h + 30) % 360,
    );
    title_lines(
        &mut svg,
        title,
        Lines { width: 15, most: 5 },
        (34, 86, 32),
        25,
        "#fff",
    );
    line(
        &mut svg,
        (34, 368),
        15,
        "fill=\"#fff\" opacity=\".9\"",
        book.byline,
    );
    svg.push_str("</svg>\n");
    svg
}

fn detail(book: &Picture<'_>) -> String {
    let (h, title) = (book.hue, book.title);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 800 500" width="800" height="500" role="img" aria-label="{label}: contents">
<rect width="800" height="500" fill="hsl({h},35%,95%)"/>
<rect x="40" y="40" width="210" height="280" rx="4" fill="hsl({h},62%,38%)"/>
<rect x="40" y="40" width="10" height="280" fill="hsl({h},40%,18%)" opacity=".5"/>
<text x="290" y="78" font-family="Georgia,'DejaVu Serif',serif" font-size="28" font-weight="700" fill="hsl({h},45%,20%)">Contents</text>
"##,
        label = escape(title),
    );
    let chapters = [
        "Foundations",
        "The moving parts",
        "Under load",
        "When things fail",
        "In production",
        "What comes next",
    ];
    for (i, chapter) in chapters.iter().enumerate() {
        let y = 124 + i * 44;
        let _ = writeln!(
            svg,
            r##"<text x="290" y="{y}" font-family="'Helvetica Neue',Arial,'DejaVu Sans',sans-serif" font-size="19" fill="#333">{n}. {chapter}</text><rect x="560" y="{line}" width="180" height="2" fill="hsl({h},30%,70%)"/><text x="760" y="{y}" text-anchor="end" font-family="'Helvetica Neue',Arial,sans-serif" font-size="17" fill="#666">{page}</text>"##,
            n = i + 1,
            line = y - 6,
            page = 1 + i * 47,
        );
    }
    title_lines(
        &mut svg,
        title,
        Lines { width: 18, most: 4 },
        (64, 84, 26),
        19,
        "#fff",
    );
    line(&mut svg, (40, 460), 18, "fill=\"#444\"", book.byline);
    svg.push_str("</svg>\n");
    svg
}

fn banner(book: &Picture<'_>) -> String {
    let (h, title) = (book.hue, book.title);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1200 400" width="1200" height="400" role="img" aria-label="{label}">
<defs><linearGradient id="b" x1="0" y1="0" x2="1" y2="0"><stop offset="0" stop-color="hsl({h},60%,22%)"/><stop offset="1" stop-color="hsl({h2},65%,45%)"/></linearGradient></defs>
<rect width="1200" height="400" fill="url(#b)"/>
<circle cx="1010" cy="200" r="250" fill="#fff" fill-opacity=".06"/>
<circle cx="1010" cy="200" r="160" fill="#fff" fill-opacity=".08"/>
<rect x="900" y="70" width="195" height="260" rx="4" fill="hsl({h},62%,40%)" stroke="#fff" stroke-opacity=".6" stroke-width="3"/>
<text x="80" y="110" font-family="'Helvetica Neue',Arial,'DejaVu Sans',sans-serif" font-size="22" letter-spacing="4" fill="#fff" opacity=".8">NOW IN THE BOOKSTORE</text>
"##,
        label = escape(title),
        h2 = (h + 40) % 360,
    );
    title_lines(
        &mut svg,
        title,
        Lines { width: 30, most: 2 },
        (80, 180, 60),
        50,
        "#fff",
    );
    let tagline = if book.tagline.is_empty() {
        book.byline
    } else {
        book.tagline
    };
    line(
        &mut svg,
        (80, 320),
        24,
        "fill=\"#fff\" opacity=\".9\"",
        tagline,
    );
    svg.push_str("</svg>\n");
    svg
}

const SERIF: &str = "Georgia,'DejaVu Serif',serif";
const SANS: &str = "'Helvetica Neue',Arial,'DejaVu Sans',sans-serif";

/// How a title is broken: lines of at most `width` characters, at most `most` of them.
struct Lines {
    width: usize,
    most: usize,
}

/// `title` in bold serif, its first line's baseline at (x, y), each next one `step` lower.
fn title_lines(
    svg: &mut String,
    title: &str,
    lines: Lines,
    (x, y, step): (usize, usize, usize),
    size: usize,
    fill: &str,
) {
    for (i, text) in wrap(title, lines.width).iter().take(lines.most).enumerate() {
        let _ = writeln!(
            svg,
            r##"<text x="{x}" y="{}" font-family="{SERIF}" font-size="{size}" font-weight="700" fill="{fill}">{}</text>"##,
            y + i * step,
            escape(text)
        );
    }
}

/// One line of sans-serif `text` at (x, y); `paint` holds its fill (and opacity) attributes.
fn line(svg: &mut String, (x, y): (usize, usize), size: usize, paint: &str, text: &str) {
    let _ = writeln!(
        svg,
        r##"<text x="{x}" y="{y}" font-family="{SANS}" font-size="{size}" {paint}>{}</text>"##,
        escape(text)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_books_are_drawn_with_their_title() {
        let svg = draw(Kind::Cover, "ddia.jpg").expect("drawn");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Designing Data-Intensive"), "{svg}");
        assert!(svg.contains("Martin Kleppmann"));
        let banner = draw(Kind::Carousel, "sre.png").expect("drawn");
        assert!(banner.contains("viewBox=\"0 0 1200 400\""));
    }

    #[test]
    fn unknown_names_get_a_placeholder_from_the_name() {
        let svg = draw(Kind::Cover, "my-new_book.png").expect("drawn");
        assert!(svg.contains("My New Book"), "{svg}");
    }

    #[test]
    fn text_is_escaped_and_odd_names_are_refused() {
        assert!(escape("a<b>&\"").contains("&lt;b&gt;&amp;&quot;"));
        assert!(draw(Kind::Cover, "../etc/passwd").is_none());
        assert!(draw(Kind::Cover, "").is_none());
        assert!(draw(Kind::Cover, &"x".repeat(200)).is_none());
    }
}
