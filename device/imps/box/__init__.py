"""The box's core: engine, scheduler, modes' policy, config, control routes, and the app's wiring."""
