"""The programme's rules: identity, eligibility, lifecycle, the registration flow. Pure: this
package imports nothing else of the project, no Telegram and no database."""
