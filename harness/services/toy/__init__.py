"""A toy echo-broadcast chat service, used by the tests to prove the service contract suffices, and
the worked example of docs/adding-a-service.md. It is not a product anyone runs.

Wire format (`codec.py`): JSON text frames. The client sends `{"op":"send","ref","body","meta"}`;
the server broadcasts `{"op":"msg","ref","from","ts","body","meta"}` to every member of the room,
the sender included (its own copy is the acknowledgement), or answers the sender alone with
`{"op":"error","ref","status","reason"}`. A kick is `{"op":"kicked"}` then close 4000; an expired
session is `{"op":"expired"}` then close 4001. Tokens come from the control plane (`POST /tokens`)
and go in the URL (`/?token=…`); a bad one is refused at the upgrade with 401.
"""
