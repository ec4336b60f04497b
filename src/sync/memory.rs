//! An in-memory [`Directory`] for unit tests of reading, applying and the failure
//! cascade. It keeps groups and users like Keycloak does (ids it makes up, children
//! under parents, members by id) and writes a line per write call, so a test can see
//! what was done and in which order. A write can be made to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::directory::{
    ATTR_WIZBRAND_USER, Attributes, Directory, DirectoryError, GroupInfo, UserInfo,
};
use crate::domain::Email;

#[derive(Default)]
pub(super) struct MemoryDirectory {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    groups: BTreeMap<String, Group>,
    users: BTreeMap<String, UserInfo>,
    next_id: u64,
    /// One line per write call, in call order; a failed one ends in ` (failed)`.
    writes: Vec<String>,
    /// Writes whose line is one of these fail with a 500.
    failing: BTreeSet<String>,
}

struct Group {
    name: String,
    parent: Option<String>,
    attributes: Attributes,
    members: BTreeSet<String>,
    realm_roles: BTreeSet<String>,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    fn path(&self, id: &str) -> String {
        match self.groups.get(id) {
            Some(g) => match &g.parent {
                Some(parent) => format!("{}/{}", self.path(parent), g.name),
                None => format!("/{}", g.name),
            },
            None => format!("?{id}"),
        }
    }

    /// Users are named by email in the lines (ids are made up).
    fn user(&self, id: &str) -> String {
        self.users
            .get(id)
            .and_then(|u| u.email.as_ref().map(Email::to_string))
            .unwrap_or_else(|| format!("?{id}"))
    }

    fn info(&self, id: &str) -> Option<GroupInfo> {
        self.groups.get(id).map(|g| GroupInfo {
            id: id.to_owned(),
            name: g.name.clone(),
            attributes: g.attributes.clone(),
            realm_roles: g.realm_roles.clone(),
            client_roles: BTreeMap::new(),
        })
    }

    /// Records a write; `Err` when the test made this one fail.
    fn write(&mut self, line: String) -> Result<(), DirectoryError> {
        if self.failing.contains(&line) {
            self.writes.push(format!("{line} (failed)"));
            return Err(DirectoryError::Call {
                call: "write",
                status: Some(500),
                message: format!("{line}: made to fail"),
            });
        }
        self.writes.push(line);
        Ok(())
    }

    fn add_group(&mut self, parent: Option<&str>, name: &str, attributes: &Attributes) -> String {
        let id = self.id("g");
        self.groups.insert(
            id.clone(),
            Group {
                name: name.to_owned(),
                parent: parent.map(str::to_owned),
                attributes: attributes.clone(),
                members: BTreeSet::new(),
                realm_roles: BTreeSet::new(),
            },
        );
        id
    }

    fn missing(what: &str, id: &str) -> DirectoryError {
        DirectoryError::Call {
            call: "read",
            status: Some(404),
            message: format!("no {what} {id}"),
        }
    }
}

impl MemoryDirectory {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A group set up by the test (no write line); `parent` by path, `None` for the top.
    pub(super) fn given_group(&self, parent: Option<&str>, name: &str) -> String {
        let mut s = self.state();
        let parent = parent.map(|path| {
            let found = s.groups.keys().find(|id| s.path(id) == path).cloned();
            found.unwrap_or_else(|| panic!("no group {path}"))
        });
        s.add_group(parent.as_deref(), name, &Attributes::new())
    }

    /// An account set up by the test.
    pub(super) fn given_user(&self, email: &str, verified: bool) -> String {
        let mut s = self.state();
        let id = s.id("u");
        let user = UserInfo {
            id: id.clone(),
            username: Some(email.to_owned()),
            email: Email::parse(email).ok(),
            email_verified: verified,
            attributes: Attributes::new(),
        };
        s.users.insert(id.clone(), user);
        id
    }

    pub(super) fn given_member(&self, user_id: &str, group_path: &str) {
        let mut s = self.state();
        let id = s.groups.keys().find(|id| s.path(id) == group_path).cloned();
        let id = id.unwrap_or_else(|| panic!("no group {group_path}"));
        if let Some(g) = s.groups.get_mut(&id) {
            g.members.insert(user_id.to_owned());
        }
    }

    /// Makes the write with this line fail (e.g. `create group /orgs/acme`).
    pub(super) fn fail(&self, line: &str) {
        self.state().failing.insert(line.to_owned());
    }

    /// The write lines so far, in call order.
    pub(super) fn writes(&self) -> Vec<String> {
        self.state().writes.clone()
    }

    /// The members of the group at this path, by email.
    pub(super) fn members_of(&self, path: &str) -> BTreeSet<String> {
        let s = self.state();
        s.groups
            .iter()
            .find(|(id, _)| s.path(id) == path)
            .map(|(_, g)| g.members.iter().map(|m| s.user(m)).collect())
            .unwrap_or_default()
    }

    pub(super) fn user_id(&self, email: &str) -> Option<String> {
        let s = self.state();
        s.users
            .values()
            .find(|u| u.email.as_ref().is_some_and(|e| e.as_str() == email))
            .map(|u| u.id.clone())
    }
}

impl Directory for MemoryDirectory {
    fn concurrency(&self) -> usize {
        4
    }

    async fn group_by_path(&self, path: &str) -> Result<Option<GroupInfo>, DirectoryError> {
        let s = self.state();
        let id = s.groups.keys().find(|id| s.path(id) == path).cloned();
        Ok(id.and_then(|id| s.info(&id)))
    }

    async fn child_groups(&self, parent_id: &str) -> Result<Vec<GroupInfo>, DirectoryError> {
        let s = self.state();
        let children = s
            .groups
            .iter()
            .filter(|(_, g)| g.parent.as_deref() == Some(parent_id))
            .filter_map(|(id, _)| s.info(id))
            .collect();
        Ok(children)
    }

    async fn group_members(&self, group_id: &str) -> Result<Vec<UserInfo>, DirectoryError> {
        let s = self.state();
        let group = s
            .groups
            .get(group_id)
            .ok_or_else(|| State::missing("group", group_id))?;
        Ok(group
            .members
            .iter()
            .filter_map(|id| s.users.get(id).cloned())
            .collect())
    }

    async fn all_users(&self) -> Result<Vec<UserInfo>, DirectoryError> {
        Ok(self.state().users.values().cloned().collect())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserInfo>, DirectoryError> {
        Ok(self.state().users.get(id).cloned())
    }

    async fn users_claiming(&self, email: &Email) -> Result<Vec<UserInfo>, DirectoryError> {
        Ok(self
            .state()
            .users
            .values()
            .filter(|u| {
                u.email.as_ref() == Some(email)
                    || u.username
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(email.as_str()))
            })
            .cloned()
            .collect())
    }

    async fn create_top_group(&self, name: &str) -> Result<String, DirectoryError> {
        let mut s = self.state();
        s.write(format!("create group /{name}"))?;
        Ok(s.add_group(None, name, &Attributes::new()))
    }

    async fn create_child_group(
        &self,
        parent_id: &str,
        name: &str,
        attributes: &Attributes,
    ) -> Result<String, DirectoryError> {
        let mut s = self.state();
        let line = format!("create group {}/{name}", s.path(parent_id));
        s.write(line)?;
        Ok(s.add_group(Some(parent_id), name, attributes))
    }

    async fn update_group(
        &self,
        group_id: &str,
        name: &str,
        attributes: &Attributes,
    ) -> Result<(), DirectoryError> {
        let mut s = self.state();
        let line = format!("update group {}", s.path(group_id));
        s.write(line)?;
        if let Some(g) = s.groups.get_mut(group_id) {
            g.name = name.to_owned();
            g.attributes = attributes.clone();
        }
        Ok(())
    }

    async fn delete_group(&self, group_id: &str) -> Result<(), DirectoryError> {
        let mut s = self.state();
        let line = format!("delete group {}", s.path(group_id));
        s.write(line)?;
        let mut gone = vec![group_id.to_owned()];
        while let Some(id) = gone.pop() {
            s.groups.remove(&id);
            let children = s
                .groups
                .iter()
                .filter(|(_, g)| g.parent.as_deref() == Some(id.as_str()))
                .map(|(child, _)| child.clone());
            gone.extend(children.collect::<Vec<_>>());
        }
        Ok(())
    }

    async fn create_user(&self, email: &Email, member: &str) -> Result<String, DirectoryError> {
        let mut s = self.state();
        s.write(format!("create user {email}"))?;
        let id = s.id("u");
        let user = UserInfo {
            id: id.clone(),
            username: Some(email.to_string()),
            email: Some(email.clone()),
            email_verified: false,
            attributes: [(ATTR_WIZBRAND_USER.to_owned(), vec![member.to_owned()])].into(),
        };
        s.users.insert(id.clone(), user);
        Ok(id)
    }

    async fn add_member(&self, user_id: &str, group_id: &str) -> Result<(), DirectoryError> {
        let mut s = self.state();
        let line = format!("add {} to {}", s.user(user_id), s.path(group_id));
        s.write(line)?;
        if !s.users.contains_key(user_id) {
            return Err(State::missing("user", user_id));
        }
        let group = s
            .groups
            .get_mut(group_id)
            .ok_or_else(|| State::missing("group", group_id))?;
        group.members.insert(user_id.to_owned());
        Ok(())
    }

    async fn remove_member(&self, user_id: &str, group_id: &str) -> Result<(), DirectoryError> {
        let mut s = self.state();
        let line = format!("remove {} from {}", s.user(user_id), s.path(group_id));
        s.write(line)?;
        if let Some(g) = s.groups.get_mut(group_id) {
            g.members.remove(user_id);
        }
        Ok(())
    }

    async fn update_user_attributes(
        &self,
        user_id: &str,
        change: &(dyn Fn(&Attributes) -> Attributes + Sync),
    ) -> Result<(), DirectoryError> {
        let mut s = self.state();
        let line = format!("set attributes of {}", s.user(user_id));
        s.write(line)?;
        let user = s
            .users
            .get_mut(user_id)
            .ok_or_else(|| State::missing("user", user_id))?;
        user.attributes = change(&user.attributes);
        Ok(())
    }

    async fn map_realm_roles(
        &self,
        group_id: &str,
        roles: &BTreeSet<String>,
    ) -> Result<(), DirectoryError> {
        let mut s = self.state();
        let line = format!("map roles to {}", s.path(group_id));
        s.write(line)?;
        if let Some(g) = s.groups.get_mut(group_id) {
            g.realm_roles.extend(roles.iter().cloned());
        }
        Ok(())
    }

    async fn unmap_realm_roles(
        &self,
        group_id: &str,
        roles: &BTreeSet<String>,
    ) -> Result<(), DirectoryError> {
        let mut s = self.state();
        let line = format!("unmap roles from {}", s.path(group_id));
        s.write(line)?;
        if let Some(g) = s.groups.get_mut(group_id) {
            g.realm_roles.retain(|r| !roles.contains(r));
        }
        Ok(())
    }

    async fn unmap_client_roles(
        &self,
        group_id: &str,
        client: &str,
        _roles: &BTreeSet<String>,
    ) -> Result<(), DirectoryError> {
        let mut s = self.state();
        let line = format!("unmap {client} roles from {}", s.path(group_id));
        s.write(line)
    }

    async fn changed_by_others_since(
        &self,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<bool>, DirectoryError> {
        Ok(None)
    }
}
