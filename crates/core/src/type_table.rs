//! Component types by name: the table behind the source and transform
//! registries. Each entry is a type name, a one-line description and what
//! builds that type; the registries add what building means for their kind
//! (typed settings, their error type).
//!
//! ```
//! use switchyard_core::type_table::TypeTable;
//!
//! let mut table = TypeTable::new("widget");
//! table.register("round", "a round widget", 1u8);
//! table.register("square", "a square widget", 2u8);
//! assert_eq!(table.get("square"), Some(2));
//! assert_eq!(table.names().collect::<Vec<_>>(), ["round", "square"]);
//! ```

/// Type names, their descriptions and builders, in registration order.
#[derive(Debug, Clone)]
pub struct TypeTable<B> {
    kind: &'static str,
    entries: Vec<Entry<B>>,
}

#[derive(Debug, Clone)]
struct Entry<B> {
    name: &'static str,
    description: &'static str,
    build: B,
}

impl<B: Copy> TypeTable<B> {
    /// An empty table of `kind`s (`source`, `transform`), the word used in
    /// its panic message.
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            entries: Vec::new(),
        }
    }

    /// Add `name`.
    ///
    /// # Panics
    /// When `name` is taken: two types under one name is a programming error
    /// that would make one of them unreachable.
    pub fn register(&mut self, name: &'static str, description: &'static str, build: B) {
        assert!(
            self.entries.iter().all(|e| e.name != name),
            "{} type `{name}` registered twice",
            self.kind
        );
        self.entries.push(Entry {
            name,
            description,
            build,
        });
    }

    /// The builder of `name`, if registered.
    pub fn get(&self, name: &str) -> Option<B> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.build)
    }

    /// The registered type names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.name)
    }

    /// Each type with its one-line description.
    pub fn describe(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.entries.iter().map(|e| (e.name, e.description))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "source type `a` registered twice")]
    fn a_name_is_registered_once() {
        let mut t = TypeTable::new("source");
        t.register("a", "first", ());
        t.register("a", "second", ());
    }

    #[test]
    fn unknown_names_have_no_builder() {
        let mut t = TypeTable::new("source");
        t.register("a", "first", 7);
        assert_eq!(t.get("b"), None);
        assert_eq!(t.describe().collect::<Vec<_>>(), [("a", "first")]);
    }
}
