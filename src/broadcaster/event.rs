//! What the library broadcasts: a [`Channel`] by kind, the [`Event`] trait an application's
//! events implement, and [`SimpleEvent`] for events built at run time.

/// A channel by kind; the prefix (`private-`, `presence-`) is added for you.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Channel(String);

impl Channel {
    pub fn public(name: impl AsRef<str>) -> Channel {
        Channel(name.as_ref().to_string())
    }
    pub fn private(name: impl AsRef<str>) -> Channel {
        Channel(format!("private-{}", name.as_ref()))
    }
    pub fn presence(name: impl AsRef<str>) -> Channel {
        Channel(format!("presence-{}", name.as_ref()))
    }
    /// A channel by its full wire name (`private-encrypted-x`, `cache-y`, ...).
    pub fn named(name: impl Into<String>) -> Channel {
        Channel(name.into())
    }
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something to broadcast: a name, a JSON payload, and the channels it goes to.
pub trait Event {
    /// The event name clients bind to (Laravel: `App\Events\OrderShipped` or `broadcastAs`).
    fn event_name(&self) -> String;
    /// The payload, as the JSON text clients receive in `data`.
    fn to_json(&self) -> String;
    /// The channels it is sent on.
    fn broadcast_on(&self) -> Vec<Channel>;
}

/// An event built at run time.
#[derive(Debug, Clone)]
pub struct SimpleEvent {
    name: String,
    data: serde_json::Value,
    channels: Vec<Channel>,
}

impl SimpleEvent {
    pub fn new(name: impl Into<String>, data: serde_json::Value) -> SimpleEvent {
        SimpleEvent {
            name: name.into(),
            data,
            channels: Vec::new(),
        }
    }
    /// Add a channel to send it on.
    pub fn on(mut self, channel: Channel) -> SimpleEvent {
        self.channels.push(channel);
        self
    }
}

impl Event for SimpleEvent {
    fn event_name(&self) -> String {
        self.name.clone()
    }
    fn to_json(&self) -> String {
        self.data.to_string()
    }
    fn broadcast_on(&self) -> Vec<Channel> {
        self.channels.clone()
    }
}
