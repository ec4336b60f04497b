//! Server-rendered pages for people: sign-in, org selection, admin.
pub mod page;
