//! The values of the sync's run journal (`sync_runs`): what started a run, where it
//! is, and how a full run knew Keycloak matched. Here, below `db` and `sync`, so that
//! the journal's SQL reads them back typed and the sync decides with them.

/// A value of a journal column that is none of the known ones.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    what: &'static str,
    value: String,
}

/// Enums stored as text in `sync_runs`: the names there (and in its CHECK constraints,
/// the API's JSON and the pages) are [`as_str`](RunStatus::as_str).
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(value: &str) -> Result<Self, UnknownValue> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: value.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "enum": [$($text),+]})
            }
        }
    };
}

text_enum!(
    /// What started a run; `sync_runs.trigger`.
    Trigger, "trigger" {
        Cron => "cron",
        Change => "change",
        Api => "api",
        /// "Sync now" on the admin sync page.
        Web => "web",
        Cli => "cli",
        Startup => "startup",
    }
);

text_enum!(
    /// Where a run is; `sync_runs.status`. A row stays `running` when its process died.
    RunStatus, "run status" {
        Running => "running",
        Succeeded => "succeeded",
        Partial => "partial",
        Failed => "failed",
        Skipped => "skipped",
        /// Stopped at a safe point (the process was shutting down) with operations
        /// left; the next run does them.
        Interrupted => "interrupted",
    }
);

text_enum!(
    /// How a full run knew Keycloak matched Postgres; `sync_runs.checked_by`.
    CheckedBy, "checked_by" {
        /// It read every group and found nothing to do.
        Read => "read",
        /// Postgres was unchanged and Keycloak's admin event log showed no change by
        /// anyone else since the last verified run.
        Events => "events",
    }
);
