#!/bin/sh
# placeholder until the tool lands
echo "tool: placeholder"
