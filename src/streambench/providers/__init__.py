"""Provider APIs: what each wire format looks like (detect, content, render, errors), and an
offline fake provider built on them."""
