//! The warehouse's rules, free of wire types and SQL.
