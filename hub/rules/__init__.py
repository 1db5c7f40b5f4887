"""Age-friendly rules and alerts: rules as data (spec), the engine and library, the alert book, the runtime."""
