"""One user's chat session on the loop thread: connect, receive, send and reconnect through a service's client protocol and a transport; its token fetches; what a measured send counts."""
