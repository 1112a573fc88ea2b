"""What every service's emulator shares: the fault and metrics routes, the admin client, the child
process launcher and the `chatload emulator` command. Each service's emulator lives in its own
package (`harness/services/<name>/emulator/`)."""
