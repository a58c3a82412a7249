"""Pure attribution rules: channel classification, session rules, the resolver. No I/O."""
