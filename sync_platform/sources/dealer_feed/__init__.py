"""An EasyCars-style dealer API: paged stock (vehicles) and leads."""
