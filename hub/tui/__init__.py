"""The caregiver TUI: a Textual client of the hub API over MQTT (textual is imported only when it runs)."""
