"""Building the method images: host-side wheelhouses, then BuildKit builds."""
