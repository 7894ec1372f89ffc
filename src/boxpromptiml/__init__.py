"""BoxPromptIML."""
