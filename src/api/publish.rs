//! The publish gate: every server-side publish (the HTTP API's `/events` and `/batch_events`,
//! the library's `Broadcaster::broadcast`, the development `/demo/publish`) passes through
//! [`Publication::check`], so the same limits of the app bind all of them: event name length,
//! `max_event_bytes`, `max_channels_per_event`, channel-name validity, the one-channel rule for
//! encrypted channels, and the `socket_id` format. A [`Publication`] is the only thing that
//! publishes ([`Publication::send`]), so nothing reaches the hub unchecked.
//!
//! Channel-name refusals for the other entry points (queries, server-side subscribe) come from
//! [`check_channel`], so a bad name reads the same everywhere.

use crate::apps::App;
use crate::hub::{Hub, SocketId};
use crate::protocol::{validate_channel_name, ChannelInfo, ChannelKind};
use std::collections::HashSet;

/// An event that passed the gate, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub app_id: String,
    pub name: String,
    /// The event's `data`, sent verbatim.
    pub data: String,
    /// Distinct channels, in the order first named.
    pub channels: Vec<String>,
    /// The publisher's own connection, which does not get the event.
    pub except: Option<SocketId>,
}

/// A channel name the app does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid channel '{channel}': {reason}")]
pub struct InvalidChannel {
    pub channel: String,
    pub reason: String,
}

/// Why the gate refused a publish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("The event name must be 1 to {max} characters")]
    EventName { max: usize },
    #[error("The event data should be at most {max} bytes (it is {bytes})")]
    TooLarge { bytes: usize, max: usize },
    #[error("The event names no channels")]
    NoChannels,
    #[error("An event must name 1 to {max} channels (it names {count})")]
    TooManyChannels { count: usize, max: usize },
    #[error(transparent)]
    InvalidChannel(#[from] InvalidChannel),
    #[error("Events to encrypted channels must name exactly one channel")]
    EncryptedNotAlone,
    #[error("Invalid socket_id '{0}'")]
    InvalidSocketId(String),
}

/// Check a channel name against the app's rules.
pub fn check_channel(app: &App, channel: &str) -> Result<(), InvalidChannel> {
    validate_channel_name(channel, app.max_channel_name_len).map_err(|e| InvalidChannel {
        channel: channel.to_string(),
        reason: e.to_string(),
    })
}

impl Publication {
    /// Check an event against `app`'s limits. A channel named twice gets the event once;
    /// `socket_id` (empty = none) is the publisher's connection, excluded from delivery.
    pub fn check(
        app: &App,
        name: String,
        data: String,
        channels: Vec<String>,
        socket_id: Option<&str>,
    ) -> Result<Publication, PublishError> {
        if name.is_empty() || name.len() > app.max_event_name_len {
            return Err(PublishError::EventName {
                max: app.max_event_name_len,
            });
        }
        if data.len() > app.max_event_bytes {
            return Err(PublishError::TooLarge {
                bytes: data.len(),
                max: app.max_event_bytes,
            });
        }
        let mut seen = HashSet::with_capacity(channels.len());
        let mut channels = channels;
        channels.retain(|c| seen.insert(c.clone()));
        if channels.is_empty() {
            return Err(PublishError::NoChannels);
        }
        if channels.len() > app.max_channels_per_event {
            return Err(PublishError::TooManyChannels {
                count: channels.len(),
                max: app.max_channels_per_event,
            });
        }
        for c in &channels {
            check_channel(app, c)?;
        }
        if channels.len() > 1
            && channels
                .iter()
                .any(|c| ChannelInfo::of(c).kind == ChannelKind::Encrypted)
        {
            return Err(PublishError::EncryptedNotAlone);
        }
        let except = match socket_id {
            None | Some("") => None,
            Some(s) => {
                Some(SocketId::parse(s).ok_or_else(|| PublishError::InvalidSocketId(s.into()))?)
            }
        };
        Ok(Publication {
            app_id: app.id.clone(),
            name,
            data,
            channels,
            except,
        })
    }

    /// Publish it through the hub (this node's subscribers, and the cluster's).
    pub fn send(&self, hub: &Hub) {
        hub.publish(
            &self.app_id,
            &self.channels,
            &self.name,
            &self.data,
            self.except,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            max_event_bytes: 10,
            max_channels_per_event: 2,
            max_event_name_len: 5,
            ..App::new("a", "k", "s")
        }
    }

    fn check(name: &str, data: &str, channels: &[&str]) -> Result<Publication, PublishError> {
        Publication::check(
            &app(),
            name.into(),
            data.into(),
            channels.iter().map(|c| c.to_string()).collect(),
            None,
        )
    }

    #[test]
    fn accepts_within_limits_and_dedups_channels() {
        let p = check("e", "0123456789", &["a", "b", "a"]).unwrap();
        assert_eq!(p.channels, ["a", "b"]);
        assert_eq!(p.data, "0123456789");
        assert_eq!(p.except, None);
    }

    #[test]
    fn refuses_what_the_app_does_not_allow() {
        assert_eq!(
            check("e", "01234567890", &["a"]),
            Err(PublishError::TooLarge { bytes: 11, max: 10 })
        );
        assert_eq!(
            check("e", "", &["a", "b", "c"]),
            Err(PublishError::TooManyChannels { count: 3, max: 2 })
        );
        assert_eq!(
            check("", "", &["a"]),
            Err(PublishError::EventName { max: 5 })
        );
        assert_eq!(
            check("toolong", "", &["a"]),
            Err(PublishError::EventName { max: 5 })
        );
        assert_eq!(check("e", "", &[]), Err(PublishError::NoChannels));
        assert!(matches!(
            check("e", "", &["a b"]),
            Err(PublishError::InvalidChannel(InvalidChannel { channel, .. })) if channel == "a b"
        ));
        assert_eq!(
            check("e", "", &["private-encrypted-x", "y"]),
            Err(PublishError::EncryptedNotAlone)
        );
        assert!(check("e", "", &["private-encrypted-x"]).is_ok());
    }

    #[test]
    fn checks_the_socket_id_format() {
        let with = |s| Publication::check(&app(), "e".into(), "".into(), vec!["a".into()], s);
        assert_eq!(
            with(Some("nope")),
            Err(PublishError::InvalidSocketId("nope".into()))
        );
        assert!(with(Some("")).unwrap().except.is_none());
        assert!(with(Some("123.456")).unwrap().except.is_some());
    }
}
